"""Cityscapes: ``ROOT/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
``ROOT/gtFine/<split>/<city>/<name>_gtFine_labelIds.png``, mapped from the 34 label ids to the 19
training classes (everything else -> ignore) with the official table (cityscapesScripts'
``labels.py``: the ``trainId`` column)."""

from pathlib import Path

import numpy as np

from kseg.data.base import DatasetError
from kseg.data.pairs import PairSource, remap_table

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
    "bicycle",
)
# label id -> train id for the ids that are trained on; every other id is ignored.
LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


def train_id_table(ignore_index=255):
    table = np.full(256, ignore_index, dtype=np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        table[label_id] = train_id
    return table


class CityscapesSource(PairSource):
    def __init__(self, root, split="train", remap=None, ignore_index=255):
        super().__init__()
        root = Path(root)
        self.root, self.split = root, split
        self.where = f"{root} (Cityscapes {split})"
        images_dir, labels_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        for need in (images_dir, labels_dir):
            if not need.is_dir():
                raise DatasetError(root, [(need, "missing folder: not a Cityscapes root for this split")])
        self.classes = CITYSCAPES_CLASSES
        self.ignore_index = int(ignore_index)
        self.remap = dict(remap or {})
        self.table = remap_table(self.remap, self.ignore_index, base=train_id_table(self.ignore_index))
        for image in sorted(images_dir.glob("*/*_leftImg8bit.png")):
            name = image.name[: -len("_leftImg8bit.png")]
            label = labels_dir / image.parent.name / f"{name}_gtFine_labelIds.png"
            if label.is_file():
                self.pairs.append((image, label))
            else:
                self.problems.append((image, f"missing label {label.relative_to(root)}"))
