"""``PairSource``: a split made of (image file, label file) pairs, the base of every file loader.

A loader (folder, CamVid, VOC, Cityscapes, COCO) only finds its pairs, names its classes and says
how a label file becomes class indices: a 256-entry lookup ``table`` over the stored values (remaps,
Cityscapes' label ids -> train ids), or its own ``read_label`` (COCO renders masks from JSON).
Checking and loading (PIL) are shared here.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import re

import numpy as np
from PIL import Image

from kseg.data.base import DatasetError, Report, Source
from kseg.errors import ConfigError

LABEL_MODES = ("L", "P")


def parse_remap(text):
    """``"11:ignore,255:1"`` -> ``{11: "ignore", 255: 1}`` (values resolved later)."""
    if not text:
        return {}
    out = {}
    for item in str(text).split(","):
        try:
            src, dst = item.split(":")
            out[int(src)] = "ignore" if dst.strip() == "ignore" else int(dst)
        except ValueError:
            raise ConfigError(
                f"bad remap entry {item!r}: expected FROM:TO with integers 0..255 or TO=ignore"
            ) from None
    return out


def remap_table(remap, ignore_index, base=None):
    """A 256-entry uint8 lookup table: ``base`` (default identity) with ``remap`` applied."""
    table = np.arange(256, dtype=np.uint8) if base is None else np.array(base, dtype=np.uint8)
    for src, dst in (remap or {}).items():
        dst = ignore_index if dst == "ignore" else dst
        if not (0 <= int(src) <= 255 and 0 <= int(dst) <= 255):
            raise ConfigError(f"remap {src}:{dst}: values must be in 0..255")
        table[int(src)] = int(dst)
    return table


def read_classes(path):
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, [(path, "class list not found")])
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not names:
        raise DatasetError(path, [(path, "class list is empty")])
    return tuple(names)


VAL_SPLITS = ("random", "first", "last")


def natural_key(key):
    """Sort key that orders ``2.png`` before ``10.png`` (serial sections, video frames)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(key))]


def carve_split(keys, split, val_fraction, seed, val_split="random"):
    """Deterministically hold out ``val_fraction`` of ``keys`` as ``val``; the rest is ``train``.

    ``val_split``: ``random`` (a seeded draw), or ``first`` / ``last``: a contiguous block at the
    start / end of the keys in natural order — for serial data (EM sections, video frames), where
    a randomly drawn validation image has its near-identical neighbours in training."""
    keys = list(keys)
    if val_split not in VAL_SPLITS:
        raise ConfigError(f"val_split must be one of {', '.join(VAL_SPLITS)}, got {val_split!r}")
    if not val_fraction or split not in ("train", "val") or len(keys) < 2:
        return keys
    n_val = max(1, int(round(len(keys) * float(val_fraction))))
    if val_split == "random":
        order = np.random.default_rng(seed).permutation(len(keys))
        chosen = order[len(keys) - n_val:] if split == "val" else order[: len(keys) - n_val]
        return [keys[i] for i in sorted(chosen)]
    ordered = sorted(keys, key=natural_key)
    block = ordered[:n_val] if val_split == "first" else ordered[len(keys) - n_val:]
    if split == "val":
        return block
    held = set(block)
    return [k for k in ordered if k not in held]


class PairSource(Source):
    """Subclasses set ``pairs`` (list of (image path, label path)), ``classes``, ``ignore_index``,
    ``where``, and either ``table`` or an overriding ``read_label``; ``problems`` collects what
    was wrong with the listing itself (missing partners, duplicates)."""

    table = None
    remap = None
    label_modes = LABEL_MODES

    def __init__(self):
        self.pairs = []
        self.problems = []

    def __len__(self):
        return len(self.pairs)

    def empty_problem(self):
        return (self.where, "empty dataset: no image/label pairs found")

    # -- labels ---------------------------------------------------------------------------
    def decode_label(self, stored):
        """Class indices from the stored label array."""
        return stored if self.table is None else self.table[stored]

    def read_label(self, path):
        with Image.open(path) as lb:
            if lb.mode not in self.label_modes:
                raise ConfigError(f"label has mode {lb.mode}; expected a single-channel PNG of "
                                 f"class indices ({' or '.join(self.label_modes)})")
            return self.decode_label(np.asarray(lb)).astype(np.uint8)

    # -- checking -------------------------------------------------------------------------
    def check_pair(self, pair):
        """(problems, (h, w) or None, label value counts or None) for one pair."""
        image_path, label_path = pair
        problems = []
        try:
            with Image.open(image_path) as im:
                im.load()
                image_size = im.size
        except Exception as exc:  # PIL raises several types for bad files
            problems.append((image_path, f"unreadable or truncated image ({exc})"))
            image_size = None
        try:
            values = self.read_label(label_path)
        except ValueError as exc:
            problems.append((label_path, str(exc)))
            return problems, None, None
        except Exception as exc:
            problems.append((label_path, f"unreadable or truncated label ({exc})"))
            return problems, None, None
        label_size = (values.shape[1], values.shape[0])
        if image_size is not None and image_size != label_size:
            problems.append(
                (label_path, f"size {label_size[0]}x{label_size[1]} differs from its image "
                             f"{Path(image_path).name} ({image_size[0]}x{image_size[1]}) (WxH)")
            )
        counts = np.bincount(values.ravel(), minlength=256)
        problem = self.value_problem(counts)
        if problem:
            problems.append((label_path, problem))
        return problems, (label_size[1], label_size[0]), counts

    def scan(self):
        report = Report(self.where, self.classes, self.ignore_index)
        report.problems.extend(self.problems)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for problems, size, counts in pool.map(self.check_pair, self.pairs):
                report.problems.extend(problems)
                if not problems and counts is not None:
                    report.add(size, counts)
        if not self.pairs and not report.problems:
            report.problems.append(self.empty_problem())
        return report

    # -- loading --------------------------------------------------------------------------
    def load_numpy(self, index):
        image_path, label_path = self.pairs[int(index)]
        with Image.open(image_path) as im:
            image = np.asarray(im.convert("RGB"))
        return image, self.read_label(label_path)
