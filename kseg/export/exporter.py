"""``export_run``: the library behind ``kseg export``.

Everything is written into a hidden temporary folder beside the destination and verified there;
only a verified export is moved into place (an atomic rename), so an interrupted or failed export
never leaves a half-written folder under the destination name.
"""

import json
import os
import shutil
from pathlib import Path

from kseg import __version__
from kseg.contract import METADATA, make_metadata, tflite_name
from kseg.data.pipeline import evaluation_dataset
from kseg.export import savedmodel, tflite
from kseg.export.verify import verify
from kseg.models import load_model, rebuild
from kseg.train.config import TrainConfig
from kseg.train.rundir import RunDir

MIN_AGREEMENT = 0.995


class ExportError(RuntimeError):
    """An export that failed verification or could not be written."""


def _replace_folder(tmp, out, overwrite):
    if out.exists():
        if not overwrite:
            raise ExportError(f"{out} already exists; pass --overwrite to replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def export_run(run_path, out, *, modes=("float32",), overwrite=False,
               min_agreement=MIN_AGREEMENT, max_images=None, output_stride=None, log=print):
    """Export the best checkpoint of the run at ``run_path`` to the folder ``out``.

    Returns the metadata dict (also written to ``out/metadata.json``). Raises ``ExportError`` when
    a file fails verification; nothing is left at ``out`` in that case.
    """
    run = RunDir(run_path)
    if not run.exists:
        raise ExportError(f"{run_path}: not a kseg run folder (no config.json)")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it")
    config = TrainConfig.from_json(run.config())
    classes = run.config()["classes"]
    height, width = config.image_size
    model_path = run.best_model_path()
    model = load_model(model_path, compile=False)
    model_options = dict(config.model_options)
    if output_stride is not None:  # same weights, another output stride (DeepLab)
        model_options["output_stride"] = int(output_stride)
        model_options.pop("weights", None)
        model = rebuild(model, config.model, num_classes=model.output.shape[-1],
                        input_shape=(height, width, 3), **model_options)
    log(f"exporting {model_path} ({height}x{width}, {len(classes)} classes) to {out}")

    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.partial-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    tmp.mkdir()
    try:
        savedmodel.save(model, tmp / "saved_model", height, width)
        files = {}
        for mode in modes:
            path = tmp / tflite_name(mode)
            path.write_bytes(tflite.convert(model, height, width, mode))
            files[mode] = path

        val = config.open_source("val")
        ds = evaluation_dataset(val, config.image_size, batch_size=8)
        if max_images:
            ds = ds.unbatch().take(int(max_images)).batch(8)
        results = verify(model, files, ds, len(classes), config.ignore_index)
        log(f"verified on {results['images']} validation images of {val.where}")
        failures = [
            f"{tflite_name(m)}: argmax agrees with Keras on {results[m]['agreement']:.2%} of pixels "
            f"(needs {min_agreement:.2%})"
            for m in modes
            if results[m]["agreement"] < min_agreement
        ]
        if failures:
            raise ExportError("verification failed, nothing exported:\n  " + "\n  ".join(failures))

        meta = make_metadata(
            classes, height, width, "scores", config.ignore_index,
            model={"name": config.model, "options": model_options,
                   "checkpoint": str(model_path), "run": str(run.path)},
            kseg_version=__version__,
            metrics={"validation_data": val.where, **results},
        )
        (tmp / METADATA).write_text(json.dumps(meta, indent=2))
        _replace_folder(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
