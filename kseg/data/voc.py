"""Pascal VOC: ``ROOT/JPEGImages/<id>.jpg``, ``ROOT/SegmentationClass/<id>.png`` (palette PNGs whose
indices are the classes, 255 = ignore) and ``ROOT/ImageSets/Segmentation/<split>.txt``.

Class names come from ``class_names.txt`` in ROOT when present (labelme's export writes one), else
the 21 VOC names. ROOT may also be a ``VOCdevkit`` folder holding ``VOC2012/``.
"""

from pathlib import Path

from kseg.data.base import DatasetError, SplitNotFound
from kseg.data.pairs import PairSource, read_classes, remap_table

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


class VOCSource(PairSource):
    def __init__(self, root, split="train", classes=None, remap=None, ignore_index=255):
        super().__init__()
        root = Path(root)
        if not (root / "JPEGImages").is_dir() and (root / "VOC2012" / "JPEGImages").is_dir():
            root = root / "VOC2012"
        self.root, self.split = root, split
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        self.where = f"{root} (VOC {split})"
        for need in (root / "JPEGImages", root / "SegmentationClass"):
            if not need.is_dir():
                raise DatasetError(root, [(need, "missing folder: not a Pascal VOC root")])
        if not list_file.is_file():
            have = sorted(p.stem for p in (root / "ImageSets" / "Segmentation").glob("*.txt"))
            raise SplitNotFound(root, [(list_file, f"no such split list (have: {', '.join(have) or 'none'})")])
        if classes is None:
            names_file = root / "class_names.txt"
            classes = read_classes(names_file) if names_file.is_file() else VOC_CLASSES
            classes = tuple("background" if c == "_background_" else c for c in classes)
        self.classes = tuple(classes)
        self.ignore_index = int(ignore_index)
        self.remap = dict(remap or {})
        self.table = remap_table(self.remap, self.ignore_index)
        ids = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        for i in ids:
            image, label = root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png"
            missing = [p for p in (image, label) if not p.is_file()]
            if missing:
                self.problems.extend((p, f"listed in {list_file.name} but missing") for p in missing)
            else:
                self.pairs.append((image, label))
