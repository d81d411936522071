"""Training augmentation inside ``tf.data``.

``Augmentation`` describes what to do to a resized training example:

- a preset, ``none`` | ``flip`` | ``light`` | ``strong``, or an albumentations pipeline saved as JSON/YAML
  (``albumentations.save``), given as a file path;
- object-level augmentation (``kseg.data.objects``): copy-paste from a donor example with
  probability ``copy_paste``, moving one object with probability ``object_transform``;
- ``crop`` = (height, width): a random window of the augmented example, last (training on crops
  of the full-size examples: the model, built for any input size, is validated and exported at
  the full size).

``flip`` only mirrors; ``light`` is TensorFlow ops only (mirror, random scale 0.75-1.25 with crop/pad, brightness and
contrast) — cheap and graph-native. ``strong`` mirrors in TensorFlow and runs albumentations for the
rest: scale 0.5-2 + rotation +-10 degrees + shift as one affine warp, colour jitter, and blur or
noise. Labels are always warped with nearest-neighbour and padded with the ignore index.

Everything is seeded per example from (seed, epoch, position), so a resumed run augments exactly
as the uninterrupted run would; albumentations runs in ``tf.numpy_function`` (in parallel, one
pipeline copy per thread) and the static shapes are set again afterwards.
"""

import dataclasses
import threading
from pathlib import Path

import numpy as np

PRESETS = ("none", "flip", "light", "strong")


def strong_pipeline(ignore_index):
    import albumentations as A

    return A.Compose([
        A.Affine(scale=(0.5, 2.0), rotate=(-10, 10), translate_percent=(-0.1, 0.1),
                 fill=0, fill_mask=ignore_index, p=0.9),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=0.8),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 5), p=1.0),
            A.MotionBlur(blur_limit=(3, 7), p=1.0),
            A.GaussNoise(std_range=(0.02, 0.08), p=1.0),
        ], p=0.3),
    ])


def load_pipeline(path):
    import albumentations as A

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: augmentation file not found (or use none, light, strong)")
    try:
        fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
        return A.load(str(path), data_format=fmt)
    except Exception as exc:
        raise ValueError(f"{path}: not an albumentations pipeline ({exc})") from None


@dataclasses.dataclass
class Augmentation:
    preset: str = "light"  # none | light | strong | path to an albumentations JSON/YAML file
    copy_paste: float = 0.0
    object_transform: float = 0.0
    object_classes: tuple = None  # class ids for copy-paste and object moves (None: all)
    ignore_index: int = 255
    crop: tuple = None  # (height, width) random window taken last; None: the whole example

    def __post_init__(self):
        if self.crop is not None:
            self.crop = tuple(int(v) for v in self.crop)
            if len(self.crop) != 2 or min(self.crop) < 8:
                raise ValueError(f"crop must be two sizes >= 8, got {self.crop}")
        for name in ("copy_paste", "object_transform"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.preset not in PRESETS:
            load_pipeline(self.preset)  # fail early on a bad file
        self._local = threading.local()

    def __getstate__(self):  # picklable for loader processes: the per-thread pipelines stay behind
        state = dict(self.__dict__)
        state.pop("_local", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def needs_donor(self):
        return self.copy_paste > 0

    @property
    def uses_numpy(self):
        return self.preset not in ("none", "flip", "light") or self.copy_paste > 0 or self.object_transform > 0

    def _albumentations(self):
        """This thread's copy of the albumentations pipeline (pipelines keep random state)."""
        pipe = getattr(self._local, "pipe", None)
        if pipe is None:
            if self.preset == "strong":
                pipe = strong_pipeline(self.ignore_index)
            elif self.preset not in PRESETS:
                pipe = load_pipeline(self.preset)
            self._local.pipe = pipe
        return pipe

    def numpy_step(self, image, label, seed, donor_image=None, donor_label=None, num_classes=256):
        """Object-level augmentation then albumentations, for one example (numpy)."""
        from kseg.data import objects

        rng = np.random.default_rng(np.asarray(seed, dtype=np.int64).view(np.uint64).tolist())
        class_ids = self.object_classes if self.object_classes is not None else range(num_classes)
        if donor_image is not None and rng.random() < self.copy_paste:
            image, label = objects.copy_paste(image, label, donor_image, donor_label, rng, class_ids)
        if self.object_transform and rng.random() < self.object_transform:
            image, label = objects.object_transform(image, label, rng, class_ids, self.ignore_index)
        pipe = self._albumentations()
        if pipe is not None:
            pipe.set_random_seed(int(rng.integers(2**31 - 1)))
            out = pipe(image=np.ascontiguousarray(image), mask=np.ascontiguousarray(label))
            image, label = out["image"], out["mask"]
        return image.astype(np.uint8), label.astype(np.uint8)

    def numpy_full(self, image, label, seed, donor=None, num_classes=256):
        """Everything ``apply`` does, in numpy (the TensorFlow-free input path of the JAX backend);
        the same transforms, drawn from a numpy generator seeded by ``seed``."""
        image, label = self._numpy_full(image, label, seed, donor, num_classes)
        if self.crop is None:
            return image, label
        return numpy_crop(image, label, self.crop, _crop_rng(seed), self.ignore_index)

    def _numpy_full(self, image, label, seed, donor, num_classes):
        if self.preset == "none" and not self.uses_numpy:
            return image, label
        rng = np.random.default_rng(np.asarray(seed, dtype=np.int64).view(np.uint64).tolist())
        if self.uses_numpy:
            d_img, d_lab = donor if donor is not None and self.needs_donor else (None, None)
            image, label = self.numpy_step(image, label, rng.integers(2**62, size=2), d_img, d_lab,
                                           num_classes=num_classes)
        if self.preset in ("flip", "light", "strong") and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        if self.preset == "light":
            image, label = numpy_scale_crop(image, label, rng, (0.75, 1.25), self.ignore_index)
            x = image.astype(np.float32) / 255.0 + rng.uniform(-0.2, 0.2)
            mean = x.mean()
            x = (x - mean) * rng.uniform(0.8, 1.2) + mean
            image = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    # -- TensorFlow ---------------------------------------------------------------------------
    def apply(self, image, label, seed, donor=None, num_classes=256):
        """TF graph: augment one resized example; ``seed`` is a stateless seed (int64 [2])."""
        import tensorflow as tf

        if self.crop is not None:
            seed_crop = tf.random.experimental.stateless_fold_in(seed, 5)  # leaves the others as they were
            image, label = self._apply(image, label, seed, donor, num_classes)
            return random_crop(image, label, self.crop, seed_crop, self.ignore_index)
        return self._apply(image, label, seed, donor, num_classes)

    def _apply(self, image, label, seed, donor, num_classes):
        import tensorflow as tf

        if self.preset == "none" and not self.uses_numpy:
            return image, label
        shape_i, shape_l = image.shape, label.shape
        seeds = tf.random.experimental.stateless_split(seed, 4)
        if self.uses_numpy:
            args = [image, label, seeds[0]]
            if donor is not None and self.needs_donor:
                args += list(donor)
            image, label = tf.numpy_function(
                lambda *a: self.numpy_step(*a, num_classes=num_classes), args,
                (tf.uint8, tf.uint8), stateful=False,
            )
            image.set_shape(shape_i)
            label.set_shape(shape_l)
        if self.preset in ("flip", "light", "strong"):
            image, label = random_flip(image, label, seeds[1])
        if self.preset == "light":
            image, label = random_scale_crop(image, label, seeds[2], (0.75, 1.25), self.ignore_index)
            image = colour_jitter(image, seeds[3])
        image.set_shape(shape_i)
        label.set_shape(shape_l)
        return image, label


def random_crop(image, label, size, seed, ignore_index):
    """A random ``size`` = (height, width) window (padded first where the example is smaller:
    image 0, label ignore)."""
    import tensorflow as tf

    h, w = int(size[0]), int(size[1])
    both = tf.concat([tf.cast(image, tf.int32), tf.cast(label, tf.int32)[..., None] - ignore_index],
                     axis=-1)  # label - ignore_index: padding reads back as ignore
    ih, iw = tf.shape(both)[0], tf.shape(both)[1]
    both = tf.image.pad_to_bounding_box(both, 0, 0, tf.maximum(ih, h), tf.maximum(iw, w))
    both = tf.image.stateless_random_crop(both, [h, w, 4], seed)
    image = tf.cast(both[..., :3], tf.uint8)
    label = tf.cast(both[..., 3] + ignore_index, tf.uint8)
    image.set_shape([h, w, 3])
    label.set_shape([h, w])
    return image, label


def _crop_rng(seed):
    return np.random.default_rng([*np.asarray(seed, dtype=np.int64).view(np.uint64).tolist(), 5])


def numpy_crop(image, label, size, rng, ignore_index=255):
    """numpy twin of ``random_crop``."""
    h, w = int(size[0]), int(size[1])
    ih, iw = label.shape
    if ih < h or iw < w:
        canvas_i = np.zeros((max(ih, h), max(iw, w), 3), np.uint8)
        canvas_l = np.full((max(ih, h), max(iw, w)), ignore_index, np.uint8)
        canvas_i[:ih, :iw], canvas_l[:ih, :iw] = image, label
        image, label = canvas_i, canvas_l
    y = rng.integers(0, label.shape[0] - h + 1)
    x = rng.integers(0, label.shape[1] - w + 1)
    return (np.ascontiguousarray(image[y:y + h, x:x + w]),
            np.ascontiguousarray(label[y:y + h, x:x + w]))


def random_flip(image, label, seed):
    import tensorflow as tf

    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    return image, label


def random_scale_crop(image, label, seed, scale, ignore_index):
    """Zoom by a random factor in ``scale``, then crop (or pad: image 0, label ignore) back to size."""
    import tensorflow as tf

    h, w = image.shape[0], image.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    s = tf.random.stateless_uniform([], seeds[0], scale[0], scale[1])
    nh = tf.cast(tf.round(h * s), tf.int32)
    nw = tf.cast(tf.round(w * s), tf.int32)
    img = tf.image.resize(image, [nh, nw], method="bilinear")
    lab = tf.image.resize(label[..., None], [nh, nw], method="nearest")
    # label - ignore_index is 0 exactly where padding goes, so padded pixels read back as ignore
    both = tf.concat([img, tf.cast(lab, tf.float32) - float(ignore_index)], axis=-1)
    ph, pw = tf.maximum(h - nh, 0), tf.maximum(w - nw, 0)
    oy = tf.random.stateless_uniform([], seeds[1], 0, ph + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([], seeds[2], 0, pw + 1, dtype=tf.int32)
    both = tf.image.pad_to_bounding_box(both, oy, ox, nh + ph, nw + pw)
    both = tf.image.stateless_random_crop(both, [h, w, 4], seeds[3])
    image = tf.cast(tf.clip_by_value(tf.round(both[..., :3]), 0, 255), tf.uint8)
    label = tf.cast(both[..., 3] + float(ignore_index), tf.uint8)
    return image, label


def colour_jitter(image, seed, brightness=0.2, contrast=0.2):
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 2)
    x = tf.cast(image, tf.float32) / 255.0
    x = tf.image.stateless_random_brightness(x, brightness, seeds[0])
    x = tf.image.stateless_random_contrast(x, 1 - contrast, 1 + contrast, seeds[1])
    return tf.cast(tf.clip_by_value(tf.round(x * 255.0), 0, 255), tf.uint8)


def numpy_scale_crop(image, label, rng, scale, ignore_index):
    """numpy twin of ``random_scale_crop``."""
    import cv2

    h, w = label.shape
    s = rng.uniform(*scale)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    lab = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
    canvas_i = np.zeros((max(h, nh), max(w, nw), 3), np.uint8)
    canvas_l = np.full((max(h, nh), max(w, nw)), ignore_index, np.uint8)
    oy, ox = rng.integers(0, max(h - nh, 0) + 1), rng.integers(0, max(w - nw, 0) + 1)
    canvas_i[oy:oy + nh, ox:ox + nw] = img
    canvas_l[oy:oy + nh, ox:ox + nw] = lab
    cy = rng.integers(0, canvas_l.shape[0] - h + 1)
    cx = rng.integers(0, canvas_l.shape[1] - w + 1)
    return canvas_i[cy:cy + h, cx:cx + w], canvas_l[cy:cy + h, cx:cx + w]
