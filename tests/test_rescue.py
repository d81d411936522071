"""int8 accuracy rescue: the layers quantization hurts most are kept in float until the budget fits."""

import numpy as np
import pytest

from kseg import models
from kseg.export import tflite
from kseg.export.rescue import rank_layers, rescue


@pytest.fixture(scope="module")
def small():
    model = models.build("unet", num_classes=3, input_shape=(32, 32, 3), depth=2, base_filters=8,
                         batch_norm=False)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    return model, images


def test_layers_are_ranked_by_quantization_error(small):
    model, images = small
    ranked = rank_layers(tflite.make_converter(model, 32, 32, "int8", images), images)
    assert len(ranked) >= 5
    errors = [e for _, _, e in ranked]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0


def test_rescue_keeps_the_fewest_worst_layers_in_float(small, tmp_path):
    model, images = small
    seen = []

    def measure(data):  # stands in for verification: each try is better than the last
        path = tmp_path / f"try{len(seen)}.tflite"
        path.write_bytes(data)
        seen.append(tflite.float_ops(path))
        return 5.0 - 1.5 * len(seen)

    data, layers, drop, tries = rescue(
        lambda: tflite.make_converter(model, 32, 32, "int8", images), images, measure, 1.0,
        log=lambda *_: None)
    assert [t["float_layers"] for t in tries] == [1, 2, 4] and drop == pytest.approx(0.5)
    ranked = [name for name, _, _ in rank_layers(
        tflite.make_converter(model, 32, 32, "int8", images), images)]
    assert layers == ranked[:4]
    assert [len(ops) for ops in seen] == [1, 2, 4]  # exactly the denylisted ops run in float
    path = tmp_path / "final.tflite"
    path.write_bytes(data)
    from kseg.runtime import TFLiteModel

    assert TFLiteModel(path).labels(images[0]).shape == (32, 32)


def test_rescue_gives_up_at_half_the_layers(small):
    model, images = small
    ranked = rank_layers(tflite.make_converter(model, 32, 32, "int8", images), images)
    data, layers, drop, tries = rescue(
        lambda: tflite.make_converter(model, 32, 32, "int8", images), images, lambda _: 9.0, 1.0,
        log=lambda *_: None)
    half = len(ranked) // 2
    assert data is None and drop == 9.0
    assert tries[-1]["float_layers"] == len(layers) == half
    assert [t["float_layers"] for t in tries][:-1] == [2 ** i for i in range(len(tries) - 1)]
