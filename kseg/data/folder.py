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
from pathlib import Path

from kseg.data.base import DatasetError, SplitNotFound
from kseg.data.pairs import PairSource, carve_split, parse_remap, read_classes, remap_table

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
LABEL_EXTENSIONS = (".png",)

__all__ = ["FolderSource", "parse_remap", "read_classes", "remap_table"]


def _listing(folder, extensions):
    found, dupes = {}, []
    for entry in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(entry)
        if ext.lower() in extensions and not entry.startswith("."):
            if stem in found:
                dupes.append(stem)
            found[stem] = folder / entry
    return found, dupes


def find_classes(base):
    """``classes.txt`` in ``base`` or its parent, or a DatasetError saying how to give them."""
    for candidate in (base / "classes.txt", base.parent / "classes.txt"):
        if candidate.is_file():
            return read_classes(candidate)
    raise DatasetError(
        base,
        [(base / "classes.txt", "no classes.txt here or in the parent folder; "
          "give the class names (--classes a,b,c)")],
    )


class FolderSource(PairSource):
    def __init__(
        self,
        root,
        split="train",
        classes=None,
        remap=None,
        ignore_index=255,
        val_fraction=0.2,
        seed=0,
        val_split="random",
    ):
        super().__init__()
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
        self.classes = tuple(classes) if classes is not None else find_classes(base)

        images, dup_i = _listing(base / "images", IMAGE_EXTENSIONS)
        labels, dup_l = _listing(base / "labels", LABEL_EXTENSIONS)
        self.problems = [
            (base / "images" / stem, "several images share this stem") for stem in dup_i
        ] + [(base / "labels" / stem, "several labels share this stem") for stem in dup_l]
        for stem in sorted(set(images) - set(labels)):
            self.problems.append((images[stem], f"missing label: no labels/{stem}.png"))
        exts = "|".join(e[1:] for e in IMAGE_EXTENSIONS)
        for stem in sorted(set(labels) - set(images)):
            self.problems.append((labels[stem], f"label without image: no images/{stem}.<{exts}>"))
        stems = sorted(set(images) & set(labels))
        single = base == root  # one folder, no split folders: splits are carved from it
        if single and split not in ("train", "val"):
            have = (f"train and val (val = {val_fraction:g} of the pairs, --val-fraction)"
                    if val_fraction else "its pairs as one set (--val-fraction 0)")
            raise SplitNotFound(base, [(base, f"no split {split!r}: this single folder has {have}; "
                                        "give a dataset that has it (e.g. --data OTHER_FOLDER)")])
        if val_fraction and split in ("train", "val"):
            stems = carve_split(stems, split, val_fraction, seed, val_split)
            self.where = (f"{base} ({split}: {len(stems)} of {len(images)} pairs, "
                          f"val_fraction={val_fraction}"
                          + (f", val_split={val_split}" if val_split != "random" else "") + ")")
        self.pairs = [(images[s], labels[s]) for s in stems]

    def empty_problem(self):
        return (self.base, "empty dataset: no image/label pairs found")
