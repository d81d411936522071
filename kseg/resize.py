"""The one resize of kseg: how an image is brought to a model's input size, and labels to a size.

Training, validation, export-time scoring, ``kseg predict``, ``kseg evaluate`` and the deploy
runtime all call these two functions, so a model sees at deploy time exactly the pixels it was
trained and scored on. Images: PIL bilinear, which filters with a kernel widened by the scale
factor when shrinking (antialiased, like ``tf.image.resize(antialias=True)``). Labels: nearest
neighbour (class indices must never be blended). Class scores at a model's own stride (an export
with ``--output-resolution model``): bilinear, then the argmax, as MediaPipe Tasks'
ImageSegmenter computes its category mask (``mask_scores``). ``bilinear_matrix`` writes the
interpolation as a matrix; the models use it (half-pixel centres) where an NPU needs upsampling
as a matrix product. ``corner_grid_matrix`` moves scores at a network's stride onto the grid a
corners-aligned client reads them on (exports at the network's stride end with it).

Only numpy and Pillow: the TensorFlow-free runtime and the loader worker processes use it.
"""

import numpy as np
from PIL import Image


def resize_image(image, size):
    """uint8 RGB ``[H, W, 3]`` resized to ``size`` = (height, width); returned as is when it
    already has that size."""
    image = np.asarray(image)
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    if image.dtype != np.uint8:
        raise ValueError(f"resize_image takes uint8 RGB, got {image.dtype}")
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def resize_labels(labels, size):
    """A label map (class indices 0..255) brought to ``size`` = (height, width) by nearest
    neighbour; uint8, or returned as is (same dtype) when it already has that size."""
    labels = np.asarray(labels)
    h, w = int(size[0]), int(size[1])
    if labels.shape == (h, w):
        return labels
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"resize_labels takes class indices 0..255, got {labels.min()}..{labels.max()}")
    return np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((w, h), Image.NEAREST))


def resize_pair(image, label, size):
    """An (image, label) example resized together to ``size`` = (height, width)."""
    return resize_image(image, size), resize_labels(label, size)


def _sample_points(out_size, in_size, align_corners=False):
    """(lower index, upper index, weight of the upper) of each output position along one axis.
    Half-pixel centres (default; TFLite's RESIZE_BILINEAR with ``half_pixel_centers``, OpenCV's
    INTER_LINEAR, ``tf.image.resize``): output ``i`` samples input position
    ``(i + 0.5) * in_size / out_size - 0.5``, clamped to the edges. ``align_corners``: position
    ``i * (in_size - 1) / (out_size - 1)`` (the first and last samples of both coincide)."""
    out_size, in_size = int(out_size), int(in_size)
    i = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = i * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    else:
        src = (i + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0, in_size - 1)
    lo = np.floor(src).astype(np.int64)
    return lo, np.minimum(lo + 1, in_size - 1), (src - lo).astype(np.float32)


def bilinear_matrix(out_size, in_size, align_corners=False):
    """``[out_size, in_size]`` float32 weights of bilinear interpolation along one axis
    (``_sample_points``): the interpolation as a matrix product."""
    lo, hi, frac = _sample_points(out_size, in_size, align_corners)
    m = np.zeros((int(out_size), int(in_size)), np.float32)
    rows = np.arange(int(out_size))
    np.add.at(m, (rows, lo), 1 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def corner_grid_matrix(n, image_size, stride):
    """``[n, n]`` float32 weights that move scores at a network's ``stride`` (``n`` samples along
    one axis of an image of ``image_size`` pixels) onto the grid a corners-aligned upsampling reads
    them on (``mask_scores``, MediaPipe's category mask): sample ``k`` then stands on image pixel
    ``k * (image_size - 1) / (n - 1)``, so it is given the value the network's own half-pixel
    upsampling has at that pixel (scores position ``(pixel + 0.5) / stride - 0.5``, clamped).
    A client that upsamples the moved scores with corners aligned then draws nearly the mask the
    network draws at full resolution, instead of one shifted by up to half a score pixel."""
    n, image_size = int(n), int(image_size)
    if n == 1 or image_size == 1:
        return np.ones((n, n), np.float32) / n
    pixel = np.arange(n, dtype=np.float64) * ((image_size - 1) / (n - 1))
    src = np.clip((pixel + 0.5) / float(stride) - 0.5, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    m = np.zeros((n, n), np.float64)
    rows = np.arange(n)
    np.add.at(m, (rows, lo), 1 - frac)
    np.add.at(m, (rows, hi), frac)
    return m.astype(np.float32)


def resize_scores(scores, size, align_corners=False):
    """Per-pixel class scores ``[h, w, C]`` (or ``[N, h, w, C]``) brought to ``size`` =
    (height, width) by bilinear interpolation (``_sample_points``); float32, or returned as is
    when they already have that size."""
    scores = np.asarray(scores)
    h, w = int(size[0]), int(size[1])
    if scores.shape[-3:-1] == (h, w):
        return scores
    x = scores.astype(np.float32, copy=False)
    for axis, n in ((-3, h), (-2, w)):  # each output sample lerps its two neighbours
        lo, hi, frac = _sample_points(n, x.shape[axis], align_corners)
        shape = [1] * x.ndim
        shape[axis] = n
        frac = frac.reshape(shape)
        low, step = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
        step -= low
        step *= frac
        low += step
        x = low
    return x


def mask_scores(scores, size):
    """The scores a category mask of ``size`` = (height, width) is the argmax of, from scores
    smaller than the image (a file at the network's stride): bilinear with corners aligned, as
    MediaPipe Tasks' ImageSegmenter computes its category mask (its confidence masks use
    half-pixel centres, ``resize_scores``; the two differ by under half a model pixel)."""
    return resize_scores(scores, size, align_corners=True)
