import numpy as np
import pytest

from kseg.data.balance import class_weights
from kseg.data.base import Report


def report_from(labels, n):
    r = Report("mem", tuple(f"c{i}" for i in range(n)), 255)
    for lab in labels:
        r.add(lab.shape, np.bincount(lab.ravel(), minlength=256))
    return r


def test_median_frequency_follows_segnet_definition():
    a = np.zeros((4, 4), np.int64)
    a[0, 0] = 1  # image A: 15 px class 0, 1 px class 1
    b = np.full((4, 4), 2, np.int64)
    b[:, :2] = 0  # image B: 8 px class 0, 8 px class 2
    r = report_from([a, b], 3)
    freq = np.array([23 / 32, 1 / 16, 8 / 16])  # class pixels / pixels of images containing it
    w = np.median(freq) / freq
    share = np.array([23, 1, 8]) / 32
    np.testing.assert_allclose(class_weights(r, "median-frequency"), w / np.sum(share * w))


def test_inverse_and_enet_and_absent_class():
    lab = np.array([[0, 0, 0, 1]])
    r = report_from([lab], 3)
    inv = class_weights(r, "inverse")
    assert inv[2] == 0 and inv[1] == pytest.approx(3 * inv[0])
    share = np.array([0.75, 0.25])
    enet = 1 / np.log(1.02 + share)
    np.testing.assert_allclose(class_weights(r, "enet")[:2], enet / np.sum(share * enet))
    assert sum(s * w for s, w in zip([0.75, 0.25], inv)) == pytest.approx(1.0)


def test_ignored_pixels_do_not_count():
    lab = np.array([[0, 1, 255, 255]])
    r = report_from([lab], 2)
    assert list(r.pixel_counts) == [1, 1, 2]
    assert class_weights(r, "inverse") == pytest.approx([1.0, 1.0])


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown class-weight method"):
        class_weights(report_from([np.zeros((2, 2), np.int64)], 2), "sqrt")
