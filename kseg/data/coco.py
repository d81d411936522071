"""COCO annotations as semantic masks.

``coco:FILE.json`` reads either kind of COCO file, told apart by their content:

- panoptic (``annotations[].segments_info``): the PNG of each image (segment id = R + 256 G + 256^2 B)
  lies in the folder named like the JSON (``panoptic_val2017.json`` -> ``panoptic_val2017/``), or
  ``masks_dir``. Every category (things and stuff) is a class, in id order; id 0 (void) is ignored.
- instances (``annotations[].segmentation`` as polygons or RLE): rasterised with pycocotools.
  Classes are ``background`` + the categories in id order (a category named ``_background_`` or
  ``background`` is the background); unannotated pixels are background, crowd regions are ignored.
  Larger objects are drawn first so small ones stay visible where they overlap.

Images are found from ``file_name`` relative to ``images_dir``, the JSON's folder, its parent, or
a sub-folder of the parent (``val2017/``). One JSON is one split: ``val_fraction`` carves a
validation part from it when no separate validation JSON is given.
"""

import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.data.base import DatasetError, SplitNotFound
from kseg.data.pairs import PairSource, carve_split

BACKGROUND_NAMES = ("_background_", "background")


def _find_image(file_name, folders):
    for folder in folders:
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


class CocoSource(PairSource):
    def __init__(self, path, split="train", images_dir=None, masks_dir=None, ignore_index=255,
                 val_fraction=0.2, seed=0, val_split="random"):
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise DatasetError(path, [(path, "COCO annotation file not found (coco:FILE.json)")])
        try:
            data = json.loads(path.read_text())
            images, categories = data["images"], data["categories"]
            annotations = data["annotations"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(path, [(path, f"not a COCO annotation file ({exc!r})")]) from None
        self.path, self.split = path, split
        self.ignore_index = int(ignore_index)
        self.panoptic = bool(annotations) and "segments_info" in annotations[0]
        cats = sorted(categories, key=lambda c: c["id"])
        if self.panoptic:
            names = [c["name"] for c in cats]
            self.category_to_class = {c["id"]: i for i, c in enumerate(cats)}
        else:
            names = ["background"]
            self.category_to_class = {}
            for c in cats:
                if c["name"] in BACKGROUND_NAMES:
                    self.category_to_class[c["id"]] = 0
                else:
                    self.category_to_class[c["id"]] = len(names)
                    names.append(c["name"])
        if len(names) > self.ignore_index:
            raise DatasetError(path, [(path, f"{len(names)} classes collide with the ignore index "
                                             f"{self.ignore_index}")])
        self.classes = tuple(names)
        kind = "panoptic" if self.panoptic else "instances"

        folders = [Path(images_dir)] if images_dir else []
        folders += [path.parent, path.parent.parent]
        folders += sorted(p for p in path.parent.parent.iterdir() if p.is_dir() and p != path.parent)
        by_id = {im["id"]: im for im in images}
        if val_fraction and split not in ("train", "val"):
            raise SplitNotFound(path, [(path, f"no split {split!r}: this annotation file is split "
                                        f"into train and val by --val-fraction")])
        ids = carve_split(sorted(by_id), split, val_fraction, seed, val_split)
        self.where = f"{path} (COCO {kind}, {split}: {len(ids)} of {len(by_id)} images)"

        if self.panoptic:
            masks = Path(masks_dir) if masks_dir else path.with_suffix("")
            if not masks.is_dir():
                raise DatasetError(path, [(masks, "panoptic PNG folder not found (give masks_dir)")])
            self.segments = {}
            per_image = {a["image_id"]: a for a in annotations}
        else:
            self._coco = None
            self._lock = threading.Lock()
            self.heights = {}
        for image_id in ids:
            info = by_id[image_id]
            image = _find_image(info["file_name"], folders)
            if image is None:
                self.problems.append((path, f"image {info['file_name']} (id {image_id}) not found "
                                            f"under {', '.join(str(f) for f in folders[:3])}"))
                continue
            if self.panoptic:
                ann = per_image.get(image_id)
                if ann is None:
                    self.problems.append((image, f"no panoptic annotation for image id {image_id}"))
                    continue
                label = masks / ann["file_name"]
                self.segments[str(label)] = {
                    s["id"]: self.category_to_class.get(s["category_id"], self.ignore_index)
                    for s in ann["segments_info"]
                }
            else:
                label = f"{path}#{image_id}"
                self.heights[image_id] = (info["height"], info["width"])
            self.pairs.append((image, label))

    # -- labels ---------------------------------------------------------------------------
    def _api(self):
        with self._lock:
            if self._coco is None:
                import contextlib
                import io

                from pycocotools.coco import COCO

                with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints timings
                    self._coco = COCO(str(self.path))
            return self._coco

    def read_label(self, label):
        label = str(label)
        if self.panoptic:
            with Image.open(label) as im:
                if im.mode != "RGB":
                    raise ValueError(f"panoptic PNG has mode {im.mode}; expected RGB segment ids")
                rgb = np.asarray(im, dtype=np.uint32)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            mapping = self.segments[label]
            out = np.full(ids.shape, self.ignore_index, np.uint8)
            for segment_id, cls in mapping.items():
                out[ids == segment_id] = cls
            unknown = np.setdiff1d(np.unique(ids), [0, *mapping])
            if unknown.size:
                raise ValueError(f"segment ids {unknown[:5].tolist()} are not in the JSON's segments_info")
            return out
        image_id = int(label.rpartition("#")[2])
        coco = self._api()
        h, w = self.heights[image_id]
        out = np.zeros((h, w), np.uint8)
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id])), key=lambda a: -a.get("area", 0))
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            if mask.shape != (h, w):
                raise ValueError(f"annotation {ann['id']} has a {mask.shape} mask for a {h}x{w} image")
            out[mask] = self.ignore_index if ann.get("iscrowd") else self.category_to_class.get(
                ann["category_id"], self.ignore_index)
        return out
