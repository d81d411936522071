"""CamVid (SegNet layout): ``ROOT/<split>/images/<stem>.jpg|png`` + ``ROOT/<split>/labels/<stem>.png``
with ``ROOT/classes.txt``; label 11 (void) becomes the ignore index."""

from pathlib import Path

from kseg.data.base import SplitNotFound
from kseg.data.folder import FolderSource

CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)
CAMVID_VOID = 11


class CamVidSource(FolderSource):
    def __init__(self, root, split="train", classes=None, remap=None, ignore_index=255):
        root = Path(root)
        if not (root / split / "images").is_dir():
            have = sorted(p.name for p in root.iterdir() if (p / "images").is_dir()) if root.is_dir() else []
            raise SplitNotFound(root, [(root / split, f"no CamVid split {split!r} here "
                                       f"(have: {', '.join(have) or 'none'})")])
        if classes is None and not (root / "classes.txt").is_file():
            classes = CAMVID_CLASSES
        remap = {CAMVID_VOID: "ignore", **(remap or {})}
        super().__init__(root, split, classes=classes, remap=remap, ignore_index=ignore_index,
                         val_fraction=0.0)
        self.where = f"{root} (CamVid {split})"
