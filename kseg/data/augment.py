"""Training augmentation: one implementation (numpy, albumentations, OpenCV), used by both input
paths — ``tf.data`` under TensorFlow (through ``tf.numpy_function``) and the TensorFlow-free loader
under JAX — so the same (seed, epoch, position) gives the same example on either backend.

``Augmentation`` describes what to do to a resized training example:

- a preset, ``none`` | ``flip`` | ``light`` | ``strong``, or an albumentations pipeline saved as JSON/YAML
  (``albumentations.save``), given as a file path;
- object-level augmentation (``kseg.data.objects``): copy-paste from a donor example with
  probability ``copy_paste``, moving one object with probability ``object_transform``;
- ``crop`` = (height, width): a random window of the augmented example, last (training on crops
  of the full-size examples: the model, built for any input size, is validated and exported at
  the full size).

``flip`` only mirrors; ``light`` mirrors, zooms by 0.75-1.25 (cropped or padded back to size) and
jitters brightness and contrast — cheap. ``strong`` runs albumentations: scale 0.5-2 + rotation
+-10 degrees + shift as one affine warp, colour jitter, and blur or noise; then mirrors. Labels are
always warped with nearest-neighbour and padded with the ignore index; resizing uses
``kseg.resize``, the resize of training, scoring and the deploy runtime.

Everything is drawn from a numpy generator seeded per example by (seed, epoch, position), so a
resumed run augments exactly as the uninterrupted run would, and loader threads and processes give
the same examples (each thread keeps its own albumentations pipeline: pipelines hold random state).
"""

import dataclasses
import threading
from pathlib import Path

import numpy as np

from kseg.data import objects
from kseg.resize import resize_pair
from kseg.errors import ConfigError

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
        raise ConfigError(f"{path}: augmentation file not found (or use none, light, strong)")
    try:
        fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
        return A.load(str(path), data_format=fmt)
    except Exception as exc:
        raise ConfigError(f"{path}: not an albumentations pipeline ({exc})") from None


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
                raise ConfigError(f"crop must be two sizes >= 8, got {self.crop}")
        for name in ("copy_paste", "object_transform"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ConfigError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
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

    def __call__(self, image, label, seed, donor=None, num_classes=256):
        """Augment one resized example (uint8 ``[H, W, 3]``, uint8 ``[H, W]``); ``seed`` is two
        integers (position, run seed). ``donor``: another example, for copy-paste."""
        words = np.asarray(seed, dtype=np.int64).ravel().view(np.uint64).tolist()
        rng = np.random.default_rng(words)
        class_ids = self.object_classes if self.object_classes is not None else range(num_classes)
        if donor is not None and self.needs_donor and rng.random() < self.copy_paste:
            image, label = objects.copy_paste(image, label, donor[0], donor[1], rng, class_ids)
        if self.object_transform and rng.random() < self.object_transform:
            image, label = objects.object_transform(image, label, rng, class_ids, self.ignore_index)
        pipe = self._albumentations()
        if pipe is not None:
            pipe.set_random_seed(int(rng.integers(2**31 - 1)))
            out = pipe(image=np.ascontiguousarray(image), mask=np.ascontiguousarray(label))
            image, label = out["image"].astype(np.uint8), out["mask"].astype(np.uint8)
        if self.preset in ("flip", "light", "strong") and rng.random() < 0.5:  # files: their own
            image, label = flip(image, label)
        if self.preset == "light":
            image, label = scale_crop(image, label, rng, (0.75, 1.25), self.ignore_index)
            image = colour_jitter(image, rng)
        if self.crop is not None:  # its own generator: the draws above do not depend on the crop
            image, label = random_crop(image, label, self.crop, np.random.default_rng([*words, 5]),
                                       self.ignore_index)
        return np.ascontiguousarray(image, np.uint8), np.ascontiguousarray(label, np.uint8)


def flip(image, label):
    """Mirror left-right."""
    return image[:, ::-1], label[:, ::-1]


def random_crop(image, label, size, rng, ignore_index=255):
    """A random ``size`` = (height, width) window (padded first where the example is smaller:
    image 0, label ignore)."""
    h, w = int(size[0]), int(size[1])
    image, label = pad_to(image, label, (h, w), (0, 0), ignore_index)
    y = rng.integers(0, label.shape[0] - h + 1)
    x = rng.integers(0, label.shape[1] - w + 1)
    return image[y:y + h, x:x + w], label[y:y + h, x:x + w]


def pad_to(image, label, size, offset, ignore_index):
    """The example placed at ``offset`` (y, x) on a canvas at least ``size`` large (image 0,
    label ignore around it)."""
    ih, iw = label.shape
    h, w = max(ih, int(size[0])), max(iw, int(size[1]))
    if (h, w) == (ih, iw):
        return image, label
    oy, ox = int(offset[0]), int(offset[1])
    canvas_i = np.zeros((h, w, 3), np.uint8)
    canvas_l = np.full((h, w), ignore_index, np.uint8)
    canvas_i[oy:oy + ih, ox:ox + iw], canvas_l[oy:oy + ih, ox:ox + iw] = image, label
    return canvas_i, canvas_l


def scale_crop(image, label, rng, scale, ignore_index=255):
    """Zoom by a random factor in ``scale``, then crop (or pad, at a random place: image 0, label
    ignore) back to the example's size."""
    h, w = label.shape
    s = rng.uniform(*scale)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    image, label = resize_pair(image, label, (nh, nw))
    offset = (rng.integers(0, max(h - nh, 0) + 1), rng.integers(0, max(w - nw, 0) + 1))
    image, label = pad_to(image, label, (h, w), offset, ignore_index)
    return random_crop(image, label, (h, w), rng, ignore_index)


def colour_jitter(image, rng, brightness=0.2, contrast=0.2):
    """Add a random brightness (+-``brightness`` of full scale), then scale each channel's
    contrast about its mean by a random factor in 1 +- ``contrast``."""
    x = image.astype(np.float32) / 255.0 + rng.uniform(-brightness, brightness)
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = (x - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
