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
