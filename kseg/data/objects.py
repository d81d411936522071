"""Object-level augmentation: manipulate the objects of a sample, not just the whole image.

- ``copy_paste``: connected components of chosen classes are cut out of a donor example and pasted
  into the image at the same place (both are already at the training size), optionally mirrored;
  the label takes the pasted objects' classes.
- ``object_transform``: one object of the image is shifted, scaled and/or mirrored; the area it
  uncovers is filled by inpainting (OpenCV Telea) and labelled ignore, since nobody knows what
  truly lies behind it.

Both are numpy functions of ``(image uint8 [H, W, 3], label uint8 [H, W], rng)``, seeded per example by ``Augmentation``.
"""

import cv2
import numpy as np
from scipy import ndimage

MIN_PIXELS = 16


def components(label, class_ids, min_pixels=MIN_PIXELS):
    """[(class id, boolean mask)] of the connected components of ``class_ids`` in ``label``."""
    out = []
    present = np.unique(label)
    for cls in class_ids:
        if cls not in present:
            continue
        parts, count = ndimage.label(label == cls)
        if not count:
            continue
        sizes = np.bincount(parts.ravel(), minlength=count + 1)
        for k in np.nonzero(sizes[1:] >= min_pixels)[0] + 1:
            out.append((int(cls), parts == k))
    return out


def copy_paste(image, label, donor_image, donor_label, rng, class_ids, flip=True):
    """Paste a random non-empty subset of the donor's objects of ``class_ids`` onto the image."""
    if flip and rng.random() < 0.5:
        donor_image, donor_label = donor_image[:, ::-1], donor_label[:, ::-1]
    objects = components(donor_label, class_ids)
    if not objects:
        return image, label
    keep = rng.random(len(objects)) < 0.5
    keep[rng.integers(len(objects))] = True
    image, label = image.copy(), label.copy()
    for (cls, mask), chosen in zip(objects, keep):
        if chosen:
            image[mask] = donor_image[mask]
            label[mask] = cls
    return image, label


def object_transform(image, label, rng, class_ids, ignore_index, max_shift=0.2,
                     scale=(0.8, 1.2), flip=0.5):
    """Move one random object of ``class_ids``: shift by up to ``max_shift`` of the image size,
    scale within ``scale``, mirror with probability ``flip``."""
    objects = components(label, class_ids)
    if not objects:
        return image, label
    cls, mask = objects[rng.integers(len(objects))]
    h, w = label.shape
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    s = rng.uniform(*scale)
    sx = -s if rng.random() < flip else s
    dx, dy = rng.uniform(-max_shift, max_shift) * w, rng.uniform(-max_shift, max_shift) * h
    # x' = sx (x - cx) + cx + dx ; y' = s (y - cy) + cy + dy
    matrix = np.array([[sx, 0, cx + dx - sx * cx], [0, s, cy + dy - s * cy]], np.float32)
    moved = cv2.warpAffine(mask.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST) > 0
    moved_pixels = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR)
    image = cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    label = label.copy()
    label[mask] = ignore_index
    image[moved] = moved_pixels[moved]
    label[moved] = cls
    return image, label
