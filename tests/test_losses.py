import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from kseg import losses


def numpy_ce(labels, logits, ignore, weights=None):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    valid = labels != ignore
    safe = np.where(valid, labels, 0)
    nll = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    w = valid.astype(np.float64)
    if weights is not None:
        w = w * np.asarray(weights)[safe]
    return (nll * w).sum() / max(w.sum(), 1e-7)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    classes=st.integers(2, 6),
    ignore_share=st.floats(0.0, 0.9),
    weighted=st.booleans(),
)
def test_cross_entropy_matches_numpy(seed, classes, ignore_share, weighted):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(2, 5, 7, classes)).astype(np.float32)
    labels = rng.integers(0, classes, size=(2, 5, 7))
    labels[rng.random(labels.shape) < ignore_share] = 255
    weights = rng.uniform(0.1, 3, size=classes).tolist() if weighted else None
    loss = losses.SparseCrossEntropy(class_weights=weights)
    got = float(loss(labels, logits))
    np.testing.assert_allclose(got, numpy_ce(labels, logits.astype(np.float64), 255, weights), rtol=1e-5, atol=1e-6)


def test_ignored_pixels_add_no_loss_and_no_gradient():
    rng = np.random.default_rng(0)
    logits = tf.Variable(rng.normal(size=(1, 4, 4, 3)).astype(np.float32))
    labels = rng.integers(0, 3, size=(1, 4, 4))
    labels[0, :2] = 255
    loss = losses.SparseCrossEntropy()
    with tf.GradientTape() as tape:
        value = loss(labels, logits)
    grad = tape.gradient(value, logits).numpy()
    assert np.all(grad[0, :2] == 0)
    assert np.any(grad[0, 2:] != 0)
    # changing the logits of ignored pixels changes nothing
    other = logits.numpy().copy()
    other[0, :2] = 1e3
    assert float(loss(labels, other)) == pytest.approx(float(value), rel=1e-6)


def test_all_ignored_gives_zero_not_nan():
    loss = losses.SparseCrossEntropy()
    assert float(loss(np.full((1, 2, 2), 255), np.zeros((1, 2, 2, 3), np.float32))) == 0.0


def test_extreme_logits_stay_finite():
    logits = tf.Variable(np.array([[[[1e4, -1e4, 0.0]]]], np.float32))
    with tf.GradientTape() as tape:
        value = losses.SparseCrossEntropy()(np.array([[[1]]]), logits)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(tape.gradient(value, logits).numpy()))


def test_get_and_config_round_trip():
    loss = losses.get("ce", ignore_index=11, class_weights=[1.0, 2.0])
    clone = losses.SparseCrossEntropy.from_config(loss.get_config())
    assert clone.ignore_index == 11 and clone.class_weights == [1.0, 2.0]
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        losses.get("nope")
