"""Datasets by spec: ``open_source(spec, split, **options)``.

Specs (``kseg train --data``):

- ``shapes`` / ``shapes:N`` — the built-in generated dataset (offline, any size);
- ``folder:PATH`` or a plain PATH — ``images/`` + ``labels/`` (+ ``classes.txt``), see ``folder``;
- ``camvid:PATH[:split]`` — CamVid (SegNet layout; void 11 -> ignore);
- ``voc:PATH[:split]`` — Pascal VOC (``ImageSets/Segmentation/<split>.txt``);
- ``cityscapes:PATH[:split]`` — Cityscapes fine labels mapped to the 19 train ids;
- ``coco:FILE.json`` — COCO panoptic or instances annotations rendered as semantic masks;
- ``tfds:NAME[:split]`` — a prepared tensorflow-datasets dataset (``tfds_data_dir``).

A split written in the spec overrides the split asked for. Loaders are added with
``register_loader(scheme)``.
"""

import copy
import os

from kseg.data.base import DatasetError, Report, Source
from kseg.data.folder import FolderSource, parse_remap
from kseg.data.shapes import ShapesSource

_LOADERS = {}


def register_loader(scheme):
    def wrap(fn):
        _LOADERS[scheme] = fn
        return fn

    return wrap


def split_spec(arg):
    """``"PATH:split"`` -> (PATH, split); ``"PATH"`` -> (PATH, None). An existing path wins."""
    if not arg or os.path.exists(arg) or ":" not in arg:
        return arg, None
    path, _, split = arg.rpartition(":")
    return path, split or None


@register_loader("shapes")
def _shapes(arg, split, *, image_size=(128, 128), seed=0, count=None, **_):
    if arg:  # "shapes:N": N training images, a fifth as many for validation
        count = int(arg) if split == "train" else max(1, int(arg) // 5)
    return ShapesSource(split, count=count, height=image_size[0], width=image_size[1], seed=seed)


@register_loader("folder")
def _folder(arg, split, *, classes=None, remap=None, ignore_index=255, val_fraction=0.2, seed=0,
            val_split="random", **_):
    return FolderSource(
        arg, split, classes=classes, remap=remap, ignore_index=ignore_index,
        val_fraction=val_fraction, seed=seed, val_split=val_split,
    )


@register_loader("camvid")
def _camvid(arg, split, *, classes=None, remap=None, ignore_index=255, **_):
    from kseg.data.camvid import CamVidSource

    path, explicit = split_spec(arg)
    return CamVidSource(path, explicit or split, classes=classes, remap=remap, ignore_index=ignore_index)


@register_loader("voc")
def _voc(arg, split, *, classes=None, remap=None, ignore_index=255, **_):
    from kseg.data.voc import VOCSource

    path, explicit = split_spec(arg)
    return VOCSource(path, explicit or split, classes=classes, remap=remap, ignore_index=ignore_index)


@register_loader("cityscapes")
def _cityscapes(arg, split, *, remap=None, ignore_index=255, **_):
    from kseg.data.cityscapes import CityscapesSource

    path, explicit = split_spec(arg)
    return CityscapesSource(path, explicit or split, remap=remap, ignore_index=ignore_index)


@register_loader("coco")
def _coco(arg, split, *, ignore_index=255, val_fraction=0.2, seed=0, coco_images=None,
          val_split="random", **_):
    from kseg.data.coco import CocoSource

    return CocoSource(arg, split, images_dir=coco_images, ignore_index=ignore_index,
                      val_fraction=val_fraction, seed=seed, val_split=val_split)


@register_loader("tfds")
def _tfds(arg, split, *, classes=None, remap=None, ignore_index=255, tfds_data_dir=None, **_):
    from kseg.data.tfds_source import TfdsSource

    name, _, explicit = arg.partition(":")  # tfds split names may hold colons: train[:80%]
    return TfdsSource(name, explicit or split, data_dir=tfds_data_dir, classes=classes,
                      remap=remap, ignore_index=ignore_index)


def loader_names():
    return sorted(_LOADERS)


def without_split(spec):
    """``spec`` with an explicit ``:split`` removed (the val split of a training spec)."""
    scheme, sep, arg = str(spec).partition(":")
    if scheme in ("camvid", "voc", "cityscapes"):
        return f"{scheme}:{split_spec(arg)[0]}"
    if scheme == "tfds":
        return f"tfds:{arg.partition(':')[0]}"
    return str(spec)


def _joined(spec, parts):
    """One source holding the pairs of every split in ``parts`` (``camvid:PATH:train+val``)."""
    from kseg.data.pairs import PairSource

    first = parts[0]
    if not all(isinstance(p, PairSource) for p in parts):
        raise DatasetError(spec, [(spec, "only folder-style datasets can join splits with '+'")])
    for p in parts[1:]:
        if (p.classes, p.ignore_index, getattr(p, "remap", None)) != (
                first.classes, first.ignore_index, getattr(first, "remap", None)):
            raise DatasetError(spec, [(p.where, f"its classes differ from those of {first.where}")])
    joined = copy.copy(first)
    joined.pairs = [pair for p in parts for pair in p.pairs]
    joined.problems = [problem for p in parts for problem in p.problems]
    joined.split = "+".join(p.split for p in parts)
    joined.where = " + ".join(p.where for p in parts)
    return joined


def open_source(spec, split="train", **options):
    """Open split ``split`` of dataset ``spec``; options go to the loader (unused ones are ignored).
    ``camvid:PATH:train+val`` (also voc, cityscapes) joins splits into one, e.g. to train the
    final model on train and val once the recipe is chosen on val."""
    spec = str(spec)
    scheme, _, arg = spec.partition(":")
    if scheme in ("camvid", "voc", "cityscapes") and not os.path.exists(spec):
        path, explicit = split_spec(arg)
        if explicit and "+" in explicit and split == "train":
            names = [n for n in explicit.split("+") if n]
            return _joined(spec, [_LOADERS[scheme](f"{path}:{n}", n, **options) for n in names])
        if explicit and "+" in explicit:  # the val split of a train+val run: the spec's own val
            return _LOADERS[scheme](path, split, **options)
    if scheme in _LOADERS and not os.path.exists(spec):
        return _LOADERS[scheme](arg, split, **options)
    if os.path.exists(spec):
        return _LOADERS["folder"](spec, split, **options)
    raise DatasetError(
        spec,
        [(spec, f"no such folder, and not a known dataset ({', '.join(loader_names())})")],
    )


def check_splits(spec, splits=None, **options):
    """``{split: Report}`` for ``splits`` of dataset ``spec`` (default: each of train, val and test
    that it has; a single folder has the train and val it carves). A split asked for by name that
    does not exist raises ``SplitNotFound``; so does a dataset with none of the three."""
    from kseg.data.base import SplitNotFound

    reports, missing, seen = {}, [], []
    for split in splits or ("train", "val", "test"):
        try:
            source = open_source(spec, split, **options)
        except SplitNotFound as exc:
            if splits:
                raise
            missing.append(exc)
            continue
        pairs = getattr(source, "pairs", None)
        if not splits and pairs is not None and pairs in seen:
            continue  # not carved (--val-fraction 0): the same pairs, checked once
        seen.append(pairs)
        reports[split] = source.scan()
    if not reports:
        raise missing[0]
    return reports


__all__ = [
    "check_splits",
    "DatasetError",
    "FolderSource",
    "Report",
    "ShapesSource",
    "Source",
    "open_source",
    "parse_remap",
    "register_loader",
    "loader_names",
    "without_split",
]
