"""Class weights from label statistics (a ``Report`` of the training data).

- ``inverse``: w_c = 1 / f_c, with f_c the share of labelled pixels in class c.
- ``median-frequency`` (Eigen & Fergus 2015, used by SegNet): w_c = median(freq) / freq_c, where
  freq_c = pixels of class c / total pixels of the images in which c is present.
- ``enet`` (Paszke et al. 2016): w_c = 1 / ln(c + p_c) with c = 1.02 and p_c the class probability.

Weights are scaled to a pixel-weighted mean of 1 (sum_c f_c w_c = 1), so the loss keeps its usual
magnitude. A class with no pixels gets weight 0 (it never occurs in the loss anyway).
"""

import numpy as np

from kseg.errors import ConfigError

METHODS = ("inverse", "median-frequency", "enet")


def class_weights(report, method):
    counts = np.asarray(report.pixel_counts[: len(report.classes)], dtype=np.float64)
    total = counts.sum()
    if total == 0:
        raise ConfigError(f"{report.where}: no labelled pixels to compute class weights from")
    share = counts / total
    present = counts > 0
    w = np.zeros_like(share)
    if method == "inverse":
        w[present] = 1.0 / share[present]
    elif method == "median-frequency":
        freq = np.zeros_like(share)
        image_pixels = np.asarray(report.image_pixel_counts, dtype=np.float64)
        freq[present] = counts[present] / image_pixels[present]
        w[present] = np.median(freq[present]) / freq[present]
    elif method == "enet":
        w[present] = 1.0 / np.log(1.02 + share[present])
    else:
        raise ConfigError(f"unknown class-weight method {method!r}; available: {', '.join(METHODS)}")
    return (w / np.sum(share * w)).tolist()

