import numpy as np
import pytest

from kseg import models


def _images(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_registry_lists_unet_and_its_options():
    assert "unet" in models.names()
    opts = models.options("unet")
    assert opts["depth"] == 4 and opts["base_filters"] == 64
    assert set(opts) >= {"depth", "base_filters", "batch_norm", "upsampling"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "nope"}, "unknown model 'nope'"),
        ({"depth": 0}, "depth must be in 1..6"),
        ({"upsampling": "cubic"}, "upsampling must be one of"),
        ({"colour": 1}, "has no option"),
        ({"input_shape": (32, 32, 1)}, "uint8 RGB"),
    ],
)
def test_bad_options_are_rejected_by_name(kwargs, message):
    kwargs = {"name": "unet", "num_classes": 3, "input_shape": (32, 32, 3), **kwargs}
    with pytest.raises(models.ModelConfigError, match=message):
        models.build(kwargs.pop("name"), **kwargs)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_unet_takes_uint8_and_returns_float32_logits(upsampling):
    m = models.build("unet", num_classes=4, input_shape=(32, 48, 3), depth=2, base_filters=4,
                     upsampling=upsampling)
    assert m.input.dtype == "uint8"
    y = np.asarray(m.predict_on_batch(_images(2, 32, 48)))
    assert y.shape == (2, 32, 48, 4) and y.dtype == np.float32


def test_any_size_model_pads_and_crops_back():
    m = models.build("unet", num_classes=3, input_shape=(None, None, 3), depth=3, base_filters=4)
    for h, w in [(37, 50), (8, 8), (65, 31)]:
        assert np.asarray(m.predict_on_batch(_images(1, h, w))).shape == (1, h, w, 3)


def test_save_load_round_trip(tmp_path):
    m = models.build("unet", num_classes=3, input_shape=(32, 32, 3), depth=2, base_filters=4)
    path = tmp_path / "m.keras"
    m.save(path)
    again = models.load_model(path)
    x = _images(2, 32, 32)
    np.testing.assert_allclose(m.predict_on_batch(x), again.predict_on_batch(x), atol=1e-6)


@pytest.mark.parametrize("backbone, width, missing", [("mobilenetv2", 0.35, {"Conv_1", "Conv_1_bn"}),
                                                      ("resnet50", 1.0, set())])
def test_backbone_layer_names_match_keras_applications(backbone, width, missing):
    """ImageNet weights load by layer name: every weighted layer of the keras.applications model
    (built here with random weights, nothing downloads) has its twin in kseg's backbone."""
    from kseg.models import backbones

    reference = backbones._reference_model(backbone, width, None)
    m = models.build("deeplabv3", num_classes=3, input_shape=(64, 64, 3), backbone=backbone,
                     width=width, aspp_channels=8)
    copied = backbones.copy_weights_by_name(reference, m)
    weighted = {layer.name for layer in reference.layers if layer.weights}
    assert weighted - set(copied) == missing  # MobileNetV2's 1280-channel head is not used
    first = reference.layers[[layer.name for layer in reference.layers].index(copied[0])]
    for a, b in zip(first.get_weights(), m.get_layer(copied[0]).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_for_unknown_combination_are_refused():
    from kseg.models import backbones

    with pytest.raises(models.ModelConfigError, match="no ImageNet weights for backbone resnet18"):
        backbones.load_imagenet_weights(None, "resnet18", 1.0, "imagenet")


def test_output_stride_is_validated_and_changes_no_weight():
    with pytest.raises(models.ModelConfigError, match="output_stride must be one of 8, 16, 32"):
        models.build("deeplabv3", num_classes=2, input_shape=(64, 64, 3), output_stride=4)
    opts = dict(backbone="resnet18", width=0.125, aspp_channels=8)
    m16 = models.build("deeplabv3", num_classes=2, input_shape=(64, 64, 3), output_stride=16, **opts)
    m8, used = models.rebuild(m16, "deeplabv3", dict(opts, output_stride=16), output_stride=8)
    assert used["output_stride"] == 8
    dil = {l.name: l.dilation_rate for l in m8.layers if hasattr(l, "dilation_rate")}
    assert dil["conv5_block2_2_conv"] == (4, 4) and dil["aspp_3x3_1_conv"] == (12, 12)
    assert all(np.array_equal(a, b) for a, b in zip(m16.get_weights(), m8.get_weights()))


def test_adaptive_pool_equals_keras_and_converts_without_gather():
    """Why kseg keeps its own AdaptiveAveragePool (kseg/models/layers.py): Keras 3's layer gives
    the same values, but its TFLite graph gathers and concatenates; kseg's is two matmuls."""
    import keras
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from kseg.models.layers import AdaptiveAveragePool

    inp = keras.Input((45, 60, 8), batch_size=1)
    ours = keras.Model(inp, AdaptiveAveragePool(3)(inp))
    theirs = keras.Model(inp, keras.layers.AdaptiveAveragePooling2D(3)(inp))
    x = np.random.default_rng(0).random((1, 45, 60, 8), dtype=np.float32)
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)

    def ops_of(model):
        interpreter = Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
        return {op["op_name"] for op in interpreter._get_ops_details()}

    assert "GATHER" in ops_of(theirs)
    assert ops_of(ours) <= {"FULLY_CONNECTED", "RESHAPE", "TRANSPOSE"}
