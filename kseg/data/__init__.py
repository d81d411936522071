"""Datasets by spec: ``open_source(spec, split, **options)``.

Specs: ``shapes`` (built in, generated), or a folder path (see ``kseg.data.folder``). Later loaders
register a ``scheme`` with ``register_loader`` and are reached as ``scheme:ARG``.
"""

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


@register_loader("shapes")
def _shapes(arg, split, *, image_size=(128, 128), seed=0, count=None, **_):
    if arg:  # "shapes:N": N training images, a fifth as many for validation
        count = int(arg) if split == "train" else max(1, int(arg) // 5)
    return ShapesSource(split, count=count, height=image_size[0], width=image_size[1], seed=seed)


@register_loader("folder")
def _folder(arg, split, *, classes=None, remap=None, ignore_index=255, val_fraction=0.2, seed=0, **_):
    return FolderSource(
        arg, split, classes=classes, remap=remap, ignore_index=ignore_index,
        val_fraction=val_fraction, seed=seed,
    )


def loader_names():
    return sorted(_LOADERS)


def open_source(spec, split="train", **options):
    """Open split ``split`` of dataset ``spec``; options go to the loader (unused ones are ignored).

    ``spec``: ``shapes``, ``shapes:COUNT``, ``folder:PATH`` or a plain PATH.
    """
    spec = str(spec)
    scheme, _, arg = spec.partition(":")
    if scheme in _LOADERS and not os.path.exists(spec):
        return _LOADERS[scheme](arg, split, **options)
    if os.path.exists(spec):
        return _LOADERS["folder"](spec, split, **options)
    raise DatasetError(
        spec,
        [(spec, f"no such folder, and not a known dataset ({', '.join(loader_names())})")],
    )


__all__ = [
    "DatasetError",
    "FolderSource",
    "Report",
    "ShapesSource",
    "Source",
    "open_source",
    "parse_remap",
    "register_loader",
    "loader_names",
]
