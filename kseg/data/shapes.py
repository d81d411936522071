"""The built-in ``shapes`` dataset: procedurally generated scenes, deterministic by seed, no files.

Each image holds a few objects of four classes (circle, rectangle, triangle, star) on a textured,
noisy background (stripes or blobs over a colour gradient, plus strong noise). Objects are smooth:
one colour with soft shading and faint noise. Object and background colours are drawn from the same
distribution, so colour thresholding cannot solve it; a model has to tell smooth from textured
surfaces and then the four outlines apart. Objects overlap; the one drawn later wins. Only numpy and pillow are used, so the generator also
feeds the TensorFlow-free (JAX backend) input path.
"""

import math

import numpy as np
from PIL import Image, ImageDraw

from kseg.data.base import Report, Source
from kseg.errors import ConfigError

CLASSES = ("background", "circle", "rectangle", "triangle", "star")
SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_003}


def _rng(seed, split, index):
    return np.random.default_rng([int(seed), SPLIT_OFFSETS[split], int(index)])


def _texture(rng, height, width):
    """A float image [H, W, 3] in 0..255: gradient + stripes or blobs + noise in random colours."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    t = (np.cos(angle) * xx / max(width, 1) + np.sin(angle) * yy / max(height, 1) + 1.0) / 2.0
    img = c0 + (c1 - c0) * t[..., None]
    kind = rng.integers(3)
    if kind == 0:  # stripes
        period = rng.uniform(4, 24)
        a2 = rng.uniform(0, 2 * math.pi)
        s = np.sin((np.cos(a2) * xx + np.sin(a2) * yy) * 2 * math.pi / period)
        img += (s[..., None] * rng.uniform(10, 60)) * rng.choice([-1, 1], size=3)
    elif kind == 1:  # smooth blobs from a coarse random grid
        gh, gw = max(2, height // 16), max(2, width // 16)
        coarse = rng.uniform(-1, 1, size=(gh, gw, 3)).astype(np.float32)
        up = np.asarray(
            Image.fromarray(((coarse + 1) * 127.5).astype(np.uint8)).resize(
                (width, height), Image.BILINEAR
            ),
            dtype=np.float32,
        )
        img += (up - 127.5) * rng.uniform(0.2, 0.6)
    img += rng.normal(0, rng.uniform(10, 25), size=img.shape)
    return img


def _polygon(cls, cx, cy, r, angle):
    if cls == "rectangle":
        aspect = 0.5 + 0.5 * math.cos(angle * 3) ** 2
        pts = [(-r, -r * aspect), (r, -r * aspect), (r, r * aspect), (-r, r * aspect)]
    elif cls == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
    elif cls == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = k * math.pi / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
    else:
        raise AssertionError(cls)
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]


def generate(index, height=128, width=128, seed=0, split="train", max_objects=5):
    """Image ``index`` of ``split``: (uint8 [H, W, 3] RGB image, uint8 [H, W] label map)."""
    if split not in SPLIT_OFFSETS:
        raise ConfigError(f"shapes: split must be one of {', '.join(SPLIT_OFFSETS)}, got {split!r}")
    rng = _rng(seed, split, index)
    img = _texture(rng, height, width)
    label = np.zeros((height, width), dtype=np.uint8)
    short = min(height, width)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls_id = int(rng.integers(1, len(CLASSES)))
        r = rng.uniform(0.1, 0.26) * short
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        mask_img = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(mask_img)
        if CLASSES[cls_id] == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        else:
            draw.polygon(_polygon(CLASSES[cls_id], cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=1)
        mask = np.asarray(mask_img, dtype=bool)
        colour = rng.uniform(0, 255, size=3)
        yy, xx = np.nonzero(mask)
        shade = 1.0 + rng.uniform(-0.25, 0.25) * ((xx - cx) + (yy - cy)) / max(r, 1.0) / 2
        img[yy, xx] = colour * shade[:, None] + rng.normal(0, 3, size=(len(yy), 3))
        label[mask] = cls_id
    return np.clip(img, 0, 255).astype(np.uint8), label


class ShapesSource(Source):
    """``count`` generated examples of ``split`` at ``height`` x ``width`` (see module docs)."""

    def __init__(self, split="train", count=None, height=128, width=128, seed=0):
        self.split = split
        self.count = int(count if count is not None else (800 if split == "train" else 160))
        self.height, self.width, self.seed = int(height), int(width), int(seed)
        self.classes = CLASSES
        self.ignore_index = 255
        self.where = f"shapes:{split} ({self.count} generated {self.height}x{self.width} images)"
        if split not in SPLIT_OFFSETS:
            raise ConfigError(f"shapes: split must be one of {', '.join(SPLIT_OFFSETS)}, got {split!r}")

    def __len__(self):
        return self.count

    def load_numpy(self, index):
        return generate(int(index), self.height, self.width, self.seed, self.split)

    def scan(self):
        report = Report(self.where, CLASSES, self.ignore_index)
        for i in range(self.count):
            counts = np.bincount(self.load_numpy(i)[1].ravel(), minlength=len(CLASSES))
            report.add((self.height, self.width), counts)
        return report
