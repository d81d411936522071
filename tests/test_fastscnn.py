"""Fast-SCNN: the paper's shape (stages, strides, parameter count), adaptive pooling equal to its
definition on sizes that do not divide, and option validation. Training, .keras round trip, any
size and int8 export: tests/test_model_zoo.py; a step under JAX: tests/test_jax_backend.py."""

import math

import numpy as np
import pytest

from kseg import models
from kseg.models.layers import AdaptiveAveragePool


def _adaptive_pool_reference(x, bins):
    n, h, w, c = x.shape
    out = np.zeros((n, bins, bins, c))
    for i in range(bins):
        r0, r1 = (i * h) // bins, math.ceil((i + 1) * h / bins)
        for j in range(bins):
            c0, c1 = (j * w) // bins, math.ceil((j + 1) * w / bins)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("bins", [1, 2, 3, 6])
@pytest.mark.parametrize("size", [(12, 15), (5, 7), (6, 6)])
def test_adaptive_pool_matches_its_definition_for_known_and_unknown_sizes(bins, size):
    import keras

    x = np.random.default_rng(bins).random((2, *size, 3)).astype("float32")
    expect = _adaptive_pool_reference(x, bins)
    np.testing.assert_allclose(np.asarray(AdaptiveAveragePool(bins)(x)), expect, atol=1e-6)
    inp = keras.Input((None, None, 3))
    dynamic = keras.Model(inp, AdaptiveAveragePool(bins)(inp))
    np.testing.assert_allclose(np.asarray(dynamic(x)), expect, atol=1e-6)


def test_fastscnn_has_the_papers_stages():
    m = models.build("fastscnn", num_classes=19, input_shape=(1024, 2048, 3))
    # the paper's 1.11 M parameters (Cityscapes, 19 classes) plus the biases and batch norm it
    # leaves out of its count
    assert 1.1e6 < m.count_params() < 1.2e6
    shapes = {layer.name: layer.output.shape for layer in m.layers}
    assert shapes["downsample_dsconv2_pointwise_relu"][1:] == (128, 256, 64)  # 1/8
    assert shapes["gfe3_3_add"][1:] == (32, 64, 128)  # 1/32
    assert shapes["ppm_pool6"][1:] == (6, 6, 128)
    assert shapes["fusion_relu"][1:] == (128, 256, 128)
    assert m.output.shape[1:] == (1024, 2048, 19)
    slim = models.build("fastscnn", num_classes=19, input_shape=(64, 64, 3), width=0.5)
    assert slim.count_params() < 0.4 * m.count_params()


def test_fastscnn_pads_odd_sizes_and_crops_back():
    m = models.build("fastscnn", num_classes=4, input_shape=(45, 70, 3), width=0.25)
    x = np.random.default_rng(0).integers(0, 256, (1, 45, 70, 3), dtype=np.uint8)
    assert np.asarray(m(x, training=False)).shape == (1, 45, 70, 4)


@pytest.mark.parametrize("option, value", [("width", 0.1), ("ppm_bins", (0, 2)),
                                           ("fusion_dilation", 0), ("dropout", 1.0)])
def test_fastscnn_rejects_bad_options(option, value):
    with pytest.raises(models.ModelConfigError, match=option):
        models.build("fastscnn", num_classes=3, input_shape=(64, 64, 3), **{option: value})
