import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kseg import metrics


def reference_scores(truth, pred, n, ignore):
    keep = truth != ignore
    t, p = truth[keep], pred[keep]
    ious, dices = [], []
    for c in range(n):
        inter = np.sum((t == c) & (p == c))
        union = np.sum((t == c) | (p == c))
        ious.append(inter / union if union else math.nan)
        denom = np.sum(t == c) + np.sum(p == c)
        dices.append(2 * inter / denom if denom else math.nan)
    return ious, dices, float(np.mean(t == p)) if t.size else math.nan


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 7), absent=st.integers(0, 6))
def test_streaming_confusion_matrix_and_scores_match_numpy(seed, n, absent):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n, size=(3, 6, 5))
    logits = rng.normal(size=(3, 6, 5, n)).astype(np.float32)
    absent = absent % n  # make one class absent from truth and prediction
    truth[truth == absent] = 255
    logits[..., absent] = -100.0
    truth[rng.random(truth.shape) < 0.2] = 255
    pred = logits.argmax(-1)

    metric = metrics.ConfusionMatrix(n, ignore_index=255)
    metric.update_state(truth[:2], logits[:2])  # streamed in two updates
    metric.update_state(truth[2:], logits[2:])
    cm = metric.matrix.numpy()
    np.testing.assert_array_equal(cm, metrics.confusion_matrix(truth, pred, n, 255))

    s = metrics.scores(cm)
    ious, dices, acc = reference_scores(truth, pred, n, 255)
    np.testing.assert_allclose(s["iou"], ious, equal_nan=True)
    np.testing.assert_allclose(s["dice"], dices, equal_nan=True)
    assert math.isnan(s["iou"][absent])
    assert s["miou"] == np.nanmean(ious)
    np.testing.assert_allclose(s["pixel_accuracy"], acc)
    result = metric.result()
    np.testing.assert_allclose(float(result["miou"]), s["miou"], rtol=1e-5)
    np.testing.assert_allclose(float(result["pixel_accuracy"]), s["pixel_accuracy"], rtol=1e-5)


def test_scores_of_empty_matrix_are_nan_not_errors():
    s = metrics.scores(np.zeros((3, 3)))
    assert math.isnan(s["miou"]) and math.isnan(s["pixel_accuracy"])


def test_known_matrix():
    cm = np.array([[3, 1], [0, 4]])
    s = metrics.scores(cm)
    assert s["iou"] == [0.75, 0.8]
    assert s["miou"] == 0.775
    assert s["pixel_accuracy"] == 7 / 8
    assert s["fwiou"] == 0.5 * 0.75 + 0.5 * 0.8


def test_metric_config_round_trip_and_reset():
    m = metrics.ConfusionMatrix(4, ignore_index=11)
    clone = metrics.ConfusionMatrix.from_config(m.get_config())
    assert (clone.num_classes, clone.ignore_index) == (4, 11)
    m.update_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 4), np.float32))
    assert m.matrix.numpy().sum() == 4
    m.reset_state()
    assert m.matrix.numpy().sum() == 0
