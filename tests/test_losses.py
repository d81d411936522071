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


# -- focal, Dice, Tversky, sums ---------------------------------------------------------------
def numpy_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def numpy_focal_softmax(labels, logits, gamma, alpha, ignore):
    p = numpy_softmax(logits)
    valid = labels != ignore
    safe = np.where(valid, labels, 0)
    pt = np.take_along_axis(p, safe[..., None], -1)[..., 0]
    a = np.ones(logits.shape[-1]) if alpha is None else np.asarray(alpha)
    term = -a[safe] * (1 - pt) ** gamma * np.log(pt)
    return (term * valid).sum() / max(valid.sum(), 1)


def numpy_focal_binary(labels, logits, gamma, ignore):
    s = 1 / (1 + np.exp(-logits))
    valid = labels != ignore
    safe = np.where(valid, labels, 0)
    t = np.eye(logits.shape[-1])[safe] if logits.shape[-1] > 1 else (safe == 1)[..., None].astype(float)
    term = -(t * (1 - s) ** gamma * np.log(s) + (1 - t) * s**gamma * np.log(1 - s)).sum(-1)
    return (term * valid).sum() / max(valid.sum(), 1)


def numpy_tversky(labels, logits, alpha, beta, smooth, ignore):
    p = numpy_softmax(logits) if logits.shape[-1] > 1 else None
    if p is None:
        s = 1 / (1 + np.exp(-logits[..., 0]))
        p = np.stack([1 - s, s], -1)
    valid = (labels != ignore)[..., None]
    t = np.eye(p.shape[-1])[np.where(labels != ignore, labels, 0)] * valid
    p = p * valid
    axes = tuple(range(p.ndim - 1))
    tp, fp, fn = (p * t).sum(axes), (p * (1 - t)).sum(axes), ((1 - p) * t).sum(axes)
    ti = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    present = t.sum(axes) > 0
    return float((1 - ti)[present].mean()) if present.any() else 0.0


def random_case(seed, classes, ignore_share=0.3, shape=(2, 5, 6)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(*shape, classes))
    labels = rng.integers(0, max(classes, 2), size=shape)
    labels[rng.random(shape) < ignore_share] = 255
    return rng, labels, logits


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), classes=st.integers(2, 5), gamma=st.sampled_from([0.0, 0.5, 2.0]),
       weighted=st.booleans())
def test_softmax_focal_matches_numpy(seed, classes, gamma, weighted):
    rng, labels, logits = random_case(seed, classes)
    alpha = rng.uniform(0.2, 2, size=classes).tolist() if weighted else None
    got = float(losses.FocalLoss(gamma=gamma, alpha=alpha)(labels, logits.astype(np.float32)))
    np.testing.assert_allclose(got, numpy_focal_softmax(labels, logits, gamma, alpha, 255), rtol=1e-4, atol=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    _, labels, logits = random_case(1, 4)
    logits = logits.astype(np.float32)
    ce = float(losses.SparseCrossEntropy()(labels, logits))
    focal = float(losses.FocalLoss(gamma=0.0)(labels, logits))
    assert abs(ce - focal) < 1e-6


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), classes=st.sampled_from([1, 2, 4]), gamma=st.sampled_from([0.0, 2.0]))
def test_binary_focal_matches_numpy_and_bce_at_gamma_zero(seed, classes, gamma):
    _, labels, logits = random_case(seed, classes)
    if classes == 1:
        labels = np.where(labels == 255, 255, labels % 2)
    got = float(losses.FocalLoss(gamma=gamma, mode="binary")(labels, logits.astype(np.float32)))
    np.testing.assert_allclose(got, numpy_focal_binary(labels, logits, gamma, 255), rtol=1e-4, atol=1e-6)
    if gamma == 0.0 and classes == 1:  # single sigmoid output: exactly Keras' binary cross-entropy
        keep = labels != 255
        bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)(
            (labels[keep] == 1).astype(np.float32)[:, None], logits[keep].astype(np.float32))
        np.testing.assert_allclose(got, float(bce), rtol=1e-5)


def test_single_channel_cross_entropy_is_binary_cross_entropy():
    _, labels, logits = random_case(3, 1, ignore_share=0.0)
    labels = labels % 2
    got = float(losses.SparseCrossEntropy()(labels, logits.astype(np.float32)))
    bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)(
        labels.astype(np.float32)[..., None], logits.astype(np.float32))
    np.testing.assert_allclose(got, float(bce), rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), classes=st.sampled_from([1, 2, 3, 5]),
       alpha=st.floats(0.1, 0.9), beta=st.floats(0.1, 0.9), smooth=st.sampled_from([0.0, 1.0]))
def test_tversky_and_dice_match_numpy(seed, classes, alpha, beta, smooth):
    _, labels, logits = random_case(seed, classes)
    if classes == 1:
        labels = np.where(labels == 255, 255, labels % 2)
    x = logits.astype(np.float32)
    got = float(losses.TverskyLoss(alpha=alpha, beta=beta, smooth=smooth)(labels, x))
    np.testing.assert_allclose(got, numpy_tversky(labels, logits, alpha, beta, smooth, 255), rtol=1e-4, atol=1e-5)
    dice = float(losses.DiceLoss(smooth=smooth)(labels, x))
    np.testing.assert_allclose(dice, numpy_tversky(labels, logits, 0.5, 0.5, smooth, 255), rtol=1e-4, atol=1e-5)


def test_dice_ignores_classes_absent_from_the_labels():
    labels = np.zeros((1, 4, 4), np.int64)
    logits = np.zeros((1, 4, 4, 3), np.float32)
    logits[..., 0] = 50.0  # confident and right about class 0, the only class present
    assert float(losses.DiceLoss(smooth=0.0)(labels, logits)) < 1e-6


def numpy_lovasz(labels, logits, ignore):
    """The Lovasz extension of the Jaccard loss from its definition (Berman et al. 2018, eq. 8-9),
    with explicit sets: sum_k m_(k) (Delta(M_k) - Delta(M_(k-1))), Delta(M) = |M| / |F u M|, where M_k
    holds the k largest-error pixels and F the pixels labelled c; mean over the classes present."""
    p = numpy_softmax(logits) if logits.shape[-1] > 1 else None
    if p is None:
        s = 1 / (1 + np.exp(-logits[..., 0]))
        p = np.stack([1 - s, s], -1)
    keep = labels.ravel() != ignore
    y, p = labels.ravel()[keep], p.reshape(-1, p.shape[-1])[keep]
    values = []
    for c in range(p.shape[-1]):
        fg = y == c
        if not fg.any():
            continue
        m = np.abs(fg - p[:, c])
        order = np.argsort(-m, kind="stable")
        total, previous, chosen = 0.0, 0.0, set()
        for i in order:
            chosen.add(int(i))
            union = set(np.flatnonzero(fg).tolist()) | chosen
            delta = len(chosen) / len(union)
            total += m[i] * (delta - previous)
            previous = delta
        values.append(total)
    return float(np.mean(values)) if values else 0.0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), classes=st.sampled_from([1, 2, 3, 5]))
def test_lovasz_matches_its_definition(seed, classes):
    _, labels, logits = random_case(seed, classes, shape=(2, 4, 5))
    if classes == 1:
        labels = np.where(labels == 255, 255, labels % 2)
    got = float(losses.LovaszSoftmaxLoss()(labels, logits.astype(np.float32)))
    np.testing.assert_allclose(got, numpy_lovasz(labels, logits, 255), rtol=1e-4, atol=1e-5)
    per_image = float(losses.LovaszSoftmaxLoss(per_image=True)(labels, logits.astype(np.float32)))
    expected = np.mean([numpy_lovasz(labels[i:i + 1], logits[i:i + 1], 255) for i in range(2)])
    np.testing.assert_allclose(per_image, expected, rtol=1e-4, atol=1e-5)


def test_lovasz_of_hard_predictions_is_one_minus_iou():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, size=(2, 6, 7))
    labels[:, 0] = 255
    pred = rng.integers(0, 3, size=labels.shape)
    onehot = np.eye(3, dtype=np.float32)[pred]
    got = float(losses.LovaszSoftmaxLoss(from_logits=False)(labels, onehot))
    valid = labels != 255
    iou = [((pred == c) & (labels == c) & valid).sum() / (((pred == c) | (labels == c)) & valid).sum()
           for c in range(3)]
    np.testing.assert_allclose(got, 1 - np.mean(iou), atol=1e-5)


def test_lovasz_traces_with_an_unknown_batch_size():
    loss = losses.LovaszSoftmaxLoss(per_image=True)
    fn = tf.function(lambda y, z: loss(y, z), input_signature=[
        tf.TensorSpec([None, 4, 5], tf.int64), tf.TensorSpec([None, 4, 5, 3], tf.float32)])
    _, labels, logits = random_case(7, 3, shape=(3, 4, 5))
    np.testing.assert_allclose(float(fn(labels, logits.astype(np.float32))),
                               float(loss(labels, logits.astype(np.float32))), rtol=1e-5)


@pytest.mark.parametrize("spec", ["ce", "focal", "dice", "tversky", "focal+dice", "ce+dice", "lovasz",
                                  "ce+lovasz"])
def test_every_loss_ignores_ignored_pixels_and_stays_finite(spec):
    loss = losses.get(spec, class_weights=[1.0, 2.0, 0.5])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(2, 4, 4))
    labels[:, :2] = 255
    logits = tf.Variable(rng.normal(0, 1e4, size=(2, 4, 4, 3)).astype(np.float32))  # extreme logits
    with tf.GradientTape() as tape:
        value = loss(labels, logits)
    grad = tape.gradient(value, logits).numpy()
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    assert np.all(grad[:, :2] == 0)
    other = logits.numpy().copy()
    other[:, :2] = -other[:, :2]
    np.testing.assert_allclose(float(loss(labels, other)), float(value), rtol=1e-5)


def test_losses_are_float32_under_mixed_precision_inputs():
    _, labels, logits = random_case(2, 3)
    for spec in ("ce", "focal", "dice"):
        value = losses.get(spec)(labels, logits.astype(np.float16))
        assert value.dtype == tf.float32


def test_sum_weights_and_config_round_trip():
    _, labels, logits = random_case(4, 3)
    x = logits.astype(np.float32)
    combo = losses.get("focal+dice", loss_weights=[2.0, 0.5], focal_gamma=1.0)
    expected = 2.0 * float(losses.FocalLoss(gamma=1.0)(labels, x)) + 0.5 * float(losses.DiceLoss()(labels, x))
    np.testing.assert_allclose(float(combo(labels, x)), expected, rtol=1e-5)
    clone = losses.CombinedLoss.from_config(combo.get_config())
    np.testing.assert_allclose(float(clone(labels, x)), expected, rtol=1e-5)
    import keras

    again = keras.losses.deserialize(keras.losses.serialize(losses.FocalLoss(gamma=3.0, mode="binary")))
    assert (again.gamma, again.mode) == (3.0, "binary")
    with pytest.raises(ValueError, match="2 loss weights given for 3 losses"):
        losses.get("ce+dice+focal", loss_weights=[1, 1])


def test_uses_class_weights_names_the_losses_that_take_them():
    assert losses.uses_class_weights("ce") and losses.uses_class_weights("focal")
    assert losses.uses_class_weights("dice + focal")  # focal's alpha
    for spec in ("dice", "tversky", "lovasz", "dice+lovasz"):
        assert not losses.uses_class_weights(spec)


def test_ohem_averages_the_cross_entropy_of_the_hard_pixels():
    import keras

    from kseg.losses import OhemCrossEntropy, get

    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(2, 8, 8, 4)) * 3).astype(np.float32)
    labels = rng.integers(0, 4, (2, 8, 8))
    labels[0, :2] = 255
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, np.where(labels == 255, 0, labels)[..., None], -1)[..., 0]
    valid = labels != 255
    for threshold, min_kept in ((0.7, 1 / 16), (0.05, 0.25), (1.0, 0.01)):
        k = max(int(nll.size * min_kept), 1)
        kth = np.sort(np.where(valid, nll, -1.0).ravel())[nll.size - k]
        hard = valid & ((np.exp(-nll) < threshold) | (nll >= kth))
        want = nll[hard].mean()
        got = float(OhemCrossEntropy(threshold=threshold, min_kept=min_kept)(labels, logits))
        assert got == pytest.approx(want, rel=1e-5), (threshold, min_kept)
    # threshold 1 keeps every pixel not predicted with certainty: the plain cross-entropy
    assert float(OhemCrossEntropy(threshold=1.0)(labels, logits)) == pytest.approx(
        float(get("ce")(labels, logits)), rel=1e-5)
    loss = get("ohem", class_weights=[1, 2, 3, 4])
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert again.class_weights == [1, 2, 3, 4] and again.threshold == 0.7
    with pytest.raises(ValueError, match="OHEM"):
        OhemCrossEntropy(threshold=0)
