"""Test-time augmentation maps every transformed prediction back to the original pixels."""

import keras
import numpy as np
import pytest

from kseg.tta import TTA, Pass

COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.float32)


def colour_model():
    """A per-pixel 'segmenter': class = the nearest of four colours (exactly equivariant)."""
    inputs = keras.Input((None, None, 3))
    # logits = -squared distance to each colour (up to a per-pixel constant): x.c - |c|^2 / 2
    conv = keras.layers.Conv2D(4, 1)
    x = conv(inputs)
    conv.set_weights([COLOURS.T[None, None] / 255.0, -(COLOURS ** 2).sum(1) / 2 / 255.0])
    return keras.Model(inputs, x)


def asymmetric_scene(h=96, w=128):
    label = np.zeros((h, w), np.uint8)
    label[8:40, 10:50] = 1          # top left
    label[60:90, 20:35] = 2         # bottom left, tall
    label[20:30, 80:124] = 3        # top right, wide
    return COLOURS[label].astype(np.uint8), label


def test_parse_spec():
    tta = TTA.parse("flip,rotate=-10,-5,5,10,scales=0.75,1,1.25")
    assert tta.flip and tta.angles == (-10, -5, 5, 10) and tta.scales == (0.75, 1.0, 1.25)
    assert len(tta.passes()) == 3 * 2 + 4 and tta.needs_any_size_for((64, 64))
    assert str(TTA.parse(str(tta))) == str(tta)
    square = TTA.parse("flip,turns")  # the 8 symmetries of the square
    assert {(p.flip, p.quarter) for p in square.passes()} == {(f, q) for f in (0, 1) for q in range(4)}
    assert square.needs_any_size_for((96, 128)) and not square.needs_any_size_for((64, 64))
    assert str(TTA.parse(str(square))) == str(square)
    for bad in ("spin", "rotate=90", "scales=x", "scales=10", "3"):
        with pytest.raises(ValueError, match="TTA"):
            TTA.parse(bad)


def test_every_pass_is_mapped_back_onto_the_original_pixels():
    model = colour_model()
    image, truth = asymmetric_scene()
    predict = lambda x: model.predict_on_batch(x.astype(np.float32))  # noqa: E731
    plain = np.argmax(predict(image[None])[0], -1)
    assert np.array_equal(plain, truth)
    for spec in ("flip", "rotate=-10,10", "scales=0.75,1.25", "flip,turns",
                 "flip,rotate=-10,-5,5,10,scales=0.75,1,1.25"):
        tta = TTA.parse(spec)
        # every single pass, inverted, lands on the truth except near object borders
        for p in tta.passes():
            probs, valid = p.inverse(
                __import__("kseg.tta", fromlist=["probabilities"]).probabilities(
                    predict(p.forward(image)[None])[0]), truth.shape)
            seen = valid > 0
            assert np.mean(np.argmax(probs, -1)[seen] == truth[seen]) > 0.97, (spec, p)
        proba = lambda x: __import__("kseg.tta", fromlist=["probabilities"]).probabilities(predict(x))  # noqa: E731
        assert np.mean(tta.predict_labels(proba, image) == truth) > 0.98, spec
    # the scene is asymmetric: a flipped or rotated prediction left un-inverted is far off
    flipped = np.argmax(predict(Pass(flip=True).forward(image)[None])[0], -1)
    rotated = np.argmax(predict(Pass(angle=10).forward(image)[None])[0], -1)
    assert np.mean(flipped == truth) < 0.8 and np.mean(rotated == truth) < 0.95
    turned = np.argmax(predict(Pass(quarter=2).forward(image)[None])[0], -1)
    assert np.mean(turned == truth) < 0.8


def test_rotated_out_corners_are_left_out_of_the_vote():
    probs = np.full((60, 80, 2), 0.5, np.float32)
    _, valid = Pass(angle=10).inverse(probs, (60, 80))
    assert valid[30, 40] == 1 and valid[0, 0] == 0 and valid[59, 79] == 0
    assert 0.75 < valid.mean() < 0.99
