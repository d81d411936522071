"""Folder datasets: ``ROOT/images/<stem>.<ext>`` + ``ROOT/labels/<stem>.png``.

Labels are single-channel PNGs (mode ``L``, or a palette PNG whose indices are the classes) holding
class indices. Class names come from ``classes.txt`` (one per line) in ROOT or its parent, or are
given explicitly. ``remap`` rewrites label values before use, e.g. ``{255: 1}`` for ISBI's 0/255
masks or ``{11: 255}`` for CamVid's void label -> ignore.

If ROOT has no ``images/`` but has ``<split>/images/`` (the CamVid layout), the split folder is used.
Otherwise a split is carved deterministically out of the single folder (``val_fraction``).

Every pair is checked before use (``scan``): missing or orphan labels, unreadable or truncated
files, image/label size mismatch, multi-channel labels, label values that are neither a class nor
the ignore index, and an empty folder are each reported with the file and the problem.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.data.base import DatasetError, Report, Source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
LABEL_EXTENSIONS = (".png",)
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
            raise ValueError(
                f"bad remap entry {item!r}: expected FROM:TO with integers 0..255 or TO=ignore"
            ) from None
    return out


def remap_table(remap, ignore_index):
    """A 256-entry lookup table applying ``remap`` to uint8 label values."""
    table = np.arange(256, dtype=np.uint8)
    for src, dst in (remap or {}).items():
        dst = ignore_index if dst == "ignore" else dst
        if not (0 <= int(src) <= 255 and 0 <= int(dst) <= 255):
            raise ValueError(f"remap {src}:{dst}: values must be in 0..255")
        table[int(src)] = int(dst)
    return table


def read_classes(path):
    names = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not names:
        raise DatasetError(path, [(path, "classes.txt is empty")])
    return tuple(names)


def _listing(folder, extensions):
    found, dupes = {}, []
    for entry in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(entry)
        if ext.lower() in extensions and not entry.startswith("."):
            if stem in found:
                dupes.append(stem)
            found[stem] = folder / entry
    return found, dupes


class FolderSource(Source):
    def __init__(
        self,
        root,
        split="train",
        classes=None,
        remap=None,
        ignore_index=255,
        val_fraction=0.2,
        seed=0,
    ):
        root = Path(root)
        if not root.exists():
            raise DatasetError(root, [(root, "folder does not exist")])
        base = root
        if not (root / "images").is_dir() and (root / split / "images").is_dir():
            base = root / split
            val_fraction = 0.0  # the split has its own folder
        self.root, self.base, self.split = root, base, split
        self.where = str(base)
        self.ignore_index = int(ignore_index)
        self.remap = dict(remap or {})
        self.table = remap_table(self.remap, self.ignore_index)

        for sub in ("images", "labels"):
            if not (base / sub).is_dir():
                raise DatasetError(base, [(base / sub, "missing folder (expected images/ and labels/)")])

        if classes is None:
            for candidate in (base / "classes.txt", base.parent / "classes.txt"):
                if candidate.is_file():
                    classes = read_classes(candidate)
                    break
            else:
                raise DatasetError(
                    base,
                    [(base / "classes.txt", "no classes.txt here or in the parent folder; "
                      "give the class names (--classes a,b,c)")],
                )
        self.classes = tuple(classes)

        images, dup_i = _listing(base / "images", IMAGE_EXTENSIONS)
        labels, dup_l = _listing(base / "labels", LABEL_EXTENSIONS)
        self._listing_problems = [
            (base / "images" / stem, "several images share this stem") for stem in dup_i
        ] + [(base / "labels" / stem, "several labels share this stem") for stem in dup_l]
        for stem in sorted(set(images) - set(labels)):
            self._listing_problems.append(
                (images[stem], f"missing label: no labels/{stem}.png")
            )
        for stem in sorted(set(labels) - set(images)):
            self._listing_problems.append(
                (labels[stem], f"label without image: no images/{stem}.<{'|'.join(e[1:] for e in IMAGE_EXTENSIONS)}>")
            )
        stems = sorted(set(images) & set(labels))
        if val_fraction and split in ("train", "val"):
            order = np.random.default_rng(seed).permutation(len(stems))
            n_val = max(1, int(round(len(stems) * float(val_fraction)))) if len(stems) > 1 else 0
            chosen = order[len(stems) - n_val:] if split == "val" else order[: len(stems) - n_val]
            stems = [stems[i] for i in sorted(chosen)]
            self.where = f"{base} ({split}: {len(stems)} of {len(images)} pairs, val_fraction={val_fraction})"
        self.pairs = [(images[s], labels[s]) for s in stems]

    def __len__(self):
        return len(self.pairs)

    # -- checking -------------------------------------------------------------------------
    def _check_pair(self, pair):
        """(problems, (h, w) or None, label counts or None) for one pair."""
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
            with Image.open(label_path) as lb:
                lb.load()
                mode, label_size = lb.mode, lb.size
                values = np.asarray(lb) if mode in LABEL_MODES else None
        except Exception as exc:
            problems.append((label_path, f"unreadable or truncated label ({exc})"))
            return problems, None, None
        if values is None:
            problems.append(
                (label_path, f"label has mode {mode}; expected a single-channel PNG of class indices (L or P)")
            )
            return problems, None, None
        if image_size is not None and image_size != label_size:
            problems.append(
                (label_path, f"size {label_size[0]}x{label_size[1]} differs from its image "
                             f"{image_path.name} ({image_size[0]}x{image_size[1]}) (WxH)")
            )
        counts = np.bincount(self.table[values].ravel(), minlength=256)
        bad = [v for v in np.nonzero(counts)[0] if v >= len(self.classes) and v != self.ignore_index]
        if bad:
            shown = ", ".join(str(int(v)) for v in bad[:8])
            problems.append(
                (label_path, f"label value(s) {shown} are neither a class (0..{len(self.classes) - 1}) "
                             f"nor the ignore index {self.ignore_index}"
                             + (" after remapping" if self.remap else ""))
            )
        return problems, (label_size[1], label_size[0]), counts

    def scan(self):
        report = Report(self.where, self.classes, self.ignore_index)
        report.problems.extend(self._listing_problems)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for problems, size, counts in pool.map(self._check_pair, self.pairs):
                report.problems.extend(problems)
                if not problems and counts is not None:
                    report.add(size, counts)
        if not self.pairs and not report.problems:
            report.problems.append((self.base, "empty dataset: no image/label pairs found"))
        return report

    # -- loading --------------------------------------------------------------------------
    def _read_label(self, path):
        with Image.open(path) as lb:
            return self.table[np.asarray(lb)]

    def load_numpy(self, index):
        image_path, label_path = self.pairs[int(index)]
        with Image.open(image_path) as im:
            image = np.asarray(im.convert("RGB"))
        return image, self._read_label(label_path)

    def load(self, index):
        import tensorflow as tf

        images = tf.constant([str(p) for p, _ in self.pairs])
        labels = tf.constant([str(p) for _, p in self.pairs])
        image = tf.io.decode_image(
            tf.io.read_file(tf.gather(images, index)), channels=3, expand_animations=False
        )
        # Labels are decoded with PIL: tf.io.decode_png expands palette PNGs to colours.
        label = tf.numpy_function(
            lambda p: self._read_label(p.decode()), [tf.gather(labels, index)], tf.uint8, stateful=False
        )
        image = tf.ensure_shape(image, (None, None, 3))
        label.set_shape((None, None))
        return image, label
