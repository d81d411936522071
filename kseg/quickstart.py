"""The main job on the built-in ``shapes`` data, end to end, in a few minutes on a laptop CPU:

1. train the default U-Net (``kseg train``),
2. export SavedModel + float32 TFLite, verified against Keras on the validation images
   (``kseg export --tflite``),
3. load the exported file with the TensorFlow-free runtime and segment a validation image,
4. print a results table.
"""

import logging
import time
from pathlib import Path

import numpy as np

from kseg.train import TrainConfig

logger = logging.getLogger(__name__)

# Chosen for a 2-core CPU: at 64x64 a 3-pool U-Net without batch norm learns these scenes faster
# (per step and per second) than with it.
RECIPE = TrainConfig(
    data="shapes:1280",
    image_size=(64, 64),
    model="unet",
    model_options={"depth": 3, "base_filters": 16, "batch_norm": False},
    epochs=10,
    batch_size=16,
    learning_rate=3e-3,
    augment="flip",
)


def run(out="runs/quickstart", epochs=None, log=logger.info):
    from kseg.data.shapes import ShapesSource
    from kseg.export import export_run
    from kseg.report.tables import format_export
    from kseg.runtime import Segmenter
    from kseg.train import train

    out = Path(out)
    config = TrainConfig.from_json({**RECIPE.to_json(), **({"epochs": epochs} if epochs else {})})
    t0 = time.time()
    result = train(config, out / "run", log=log)
    t_train = time.time() - t0
    meta = export_run(out / "run", out / "exported", overwrite=True, log=log)
    t_export = time.time() - t0 - t_train

    seg = Segmenter(out / "exported" / "model_float32.tflite")
    image, truth = ShapesSource("val", height=config.image_size[0], width=config.image_size[1]).load_numpy(0)
    labels = seg.segment(image)
    seg.overlay(image, labels).save(out / "example_overlay.png")
    runtime_acc = float(np.mean(labels == truth))

    log("")
    log(format_export(meta, out / "exported"))
    log("")
    log(f"training: {result['epochs_done']} epochs, best val mIoU {result['best_val_miou']:.4f} "
        f"(epoch {result['best_epoch']}), {t_train:.0f} s; export + verification {t_export:.0f} s")
    log(f"deploy runtime (no TensorFlow): {seg.model.path.name} segmented a validation image with "
        f"pixel accuracy {runtime_acc:.4f}; overlay in {out / 'example_overlay.png'}")
    return {"train": result, "export": meta, "runtime_pixel_accuracy": runtime_acc}
