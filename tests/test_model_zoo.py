"""Every model x backbone: builds (small sizes, any size, CamVid's 360x480), trains one step,
round-trips through .keras, converts to float32 and full-integer int8 TFLite and runs in
ai-edge-litert with no float op in the int8 graph besides the input/output conversions."""

import numpy as np
import pytest

from kseg import losses, models
from kseg.export import tflite
from kseg.runtime import TFLiteModel

SMALL = {"mobilenetv2": 0.35, "resnet18": 0.125, "resnet50": 0.125}
COMBOS = [(m, b) for m in ("fcn32s", "fcn16s", "fcn8s", "deeplabv3", "deeplabv3plus") for b in SMALL]
COMBOS += [("unet", None), ("fastscnn", None)]


def small_options(model, backbone):
    if model == "unet":
        return {"depth": 3, "base_filters": 4}
    if model == "fastscnn":
        return {"width": 0.25}
    opts = {"backbone": backbone, "width": SMALL[backbone]}
    if model.startswith("fcn"):
        opts["head_channels"] = 16
    else:
        opts["aspp_channels"] = 16
    if model == "deeplabv3plus":
        opts.update(low_level_channels=8, decoder_channels=16)
    return opts


def images(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("model_name, backbone", COMBOS)
def test_model_backbone_combination(model_name, backbone, tmp_path):
    opts = small_options(model_name, backbone)
    m = models.build(model_name, num_classes=3, input_shape=(64, 64, 3), **opts)
    x = images(2, 64, 64)
    y = np.random.default_rng(1).integers(0, 3, (2, 64, 64))
    m.compile("adam", losses.SparseCrossEntropy(), run_eagerly=True)  # one step: skip tracing
    m.train_on_batch(x, y)

    ref = np.asarray(m(x, training=False))  # eager calls: no tracing, fast for one batch
    path = tmp_path / "m.keras"
    m.save(path)
    again = models.load_model(path)
    np.testing.assert_allclose(np.asarray(again(x, training=False)), ref, atol=1e-5)

    # CamVid's size, and any size (padded to the stride inside, cropped back)
    big = models.build(model_name, num_classes=3, input_shape=(360, 480, 3), **opts)
    assert big.output.shape[1:] == (360, 480, 3)
    anysize, _ = models.rebuild(m, model_name, opts, input_shape=(None, None, 3))
    assert np.asarray(anysize(images(1, 50, 70), training=False)).shape == (1, 50, 70, 3)
    np.testing.assert_allclose(np.asarray(anysize(x, training=False)), ref, atol=1e-4)

    files = {}
    for mode in ("float32", "int8"):
        files[mode] = tmp_path / f"{mode}.tflite"
        files[mode].write_bytes(tflite.convert(m, 64, 64, mode, representative=images(8, 64, 64, seed=2)))
    e = np.exp(ref[0] - ref[0].max(-1, keepdims=True))  # the files end in a softmax
    np.testing.assert_allclose(TFLiteModel(files["float32"])(x[:1]), e / e.sum(-1, keepdims=True),
                               atol=1e-4)
    q = TFLiteModel(files["int8"])
    probs = q(x[:1])  # the int8 graph ends in DEQUANTIZE + SOFTMAX: float32 probabilities
    assert q.output["dtype"] == np.float32 and probs.shape == (64, 64, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert tflite.float_ops(files["int8"]) == []
