"""The model, loss and metric code is backend-neutral (keras.layers / keras.ops only): each family
builds and trains one step under KERAS_BACKEND=jax, in a subprocess where TensorFlow is blocked;
and `kseg train --backend jax` trains a U-Net end to end that TensorFlow then exports."""

import importlib.util
import os
import subprocess
import sys

import pytest

CODE = r"""
import sys
sys.modules["tensorflow"] = None  # the JAX path must not need TensorFlow
import time
import numpy as np, keras
assert keras.backend.backend() == "jax"
from kseg import losses, metrics, models
x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
y = np.random.default_rng(1).integers(0, 3, (2, 64, 64)).astype(np.int32)
y[:, :4] = 255
for name, opts, loss in [  # U-Net trains under JAX end to end in the test below
    ("fcn8s", dict(backbone="resnet18", width=0.125, head_channels=8), "focal+dice"),
    ("deeplabv3", dict(backbone="resnet18", width=0.125, aspp_channels=8, output_stride=8), "ce"),
    ("deeplabv3plus", dict(backbone="mobilenetv2", width=0.35, aspp_channels=8,
                           low_level_channels=8, decoder_channels=8), "ce+lovasz"),
    ("fastscnn", dict(width=0.25), "ohem"),
]:
    t0 = time.time()
    m = models.build(name, num_classes=3, input_shape=(64, 64, 3), **opts)
    loss, aux = losses.get(loss), []
    if models.auxiliary_taps(name):  # Fast-SCNN trains with its auxiliary heads
        m = models.auxiliary.add_heads(m, models.auxiliary_taps(name))
        aux = models.auxiliary.strides(m)
        loss = losses.DeepSupervision(loss, loss, [0.4] * len(aux), aux)
    m.compile(keras.optimizers.Adam(1e-3), loss, metrics=[metrics.ConfusionMatrix(3, aux_strides=aux)])
    logs = m.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]), (name, logs)
    # no predict_on_batch here: compiling it too took ~40 s per family on 2 cores (inference
    # under JAX runs in the U-Net test below); resnet50 trains under TensorFlow in test_model_zoo
    print(name, "ok", round(time.time() - t0, 1), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_every_family_trains_under_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count(" ok") == 4


TRAIN_JAX = r"""
import sys
sys.modules["tensorflow"] = None  # the JAX training path must not need TensorFlow
from kseg.cli import main
# --backend reaches Keras before it is imported; group options (--verbose) are kept
main([*sys.argv[2:], "train", "--backend", "jax", "--data", "shapes:48", "--image-size", "32", "32", "--batch-size", "8",
      "-o", "depth=2", "-o", "base_filters=4", "-o", "batch_norm=false", "--epochs", "2",
      "--learning-rate", "0.01", "--augment", "light", "--copy-paste", "0.5",
      "--schedule", "poly", "--ema", "0.9", "--out", sys.argv[1]], standalone_mode=False)
import keras
assert keras.backend.backend() == "jax"
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_backend_trains_without_tensorflow_and_tensorflow_exports_it(tmp_path):
    run = tmp_path / "jaxrun"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", TRAIN_JAX, str(run)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    import json

    entries = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in entries] == [1, 2] and entries[-1]["val_miou"] > 0
    # the same command resumes (no epochs left) under JAX too
    proc = subprocess.run([sys.executable, "-c", TRAIN_JAX, str(run), "--verbose"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and "already finished" in proc.stdout
    assert [s["backend"] for s in json.loads((run / "sessions.json").read_text())] == ["jax"]

    from click.testing import CliRunner

    from kseg.cli import main

    out = tmp_path / "exported"
    r = CliRunner().invoke(main, ["export", str(run), "--tflite", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["metrics"]["float32"]["agreement"] >= 0.995
    # Keras on TensorFlow scores the JAX-trained checkpoint as the JAX run did
    assert meta["metrics"]["keras"]["miou"] == pytest.approx(
        max(e["val_miou"] for e in entries), abs=0.02)
