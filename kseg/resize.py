"""The one resize of kseg: how an image is brought to a model's input size, and labels to a size.

Training, validation, export-time scoring, ``kseg predict``, ``kseg evaluate`` and the deploy
runtime all call these two functions, so a model sees at deploy time exactly the pixels it was
trained and scored on. Images: PIL bilinear, which filters with a kernel widened by the scale
factor when shrinking (antialiased, like ``tf.image.resize(antialias=True)``). Labels: nearest
neighbour (class indices must never be blended).

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
