"""Make an exported folder written by an older kseg readable by the mobile clients, without its run.

Older exports end in raw class scores and describe themselves only in ``metadata.json``. The same
graph edits and metadata that ``kseg export`` now applies (``kseg.export.tflite.finish`` and
``kseg.export.tflite_metadata.embed``) are applied to each file as it is: the layers before the
softmax are untouched, so every argmax — and every score in ``metadata.json`` — stays what it was.
Each upgraded file is checked against the original on a few images before anything is replaced,
and the folder is swapped in whole (``kseg.files.atomic_folder``), under the folder's lock.
"""

import logging
import json
import shutil
from pathlib import Path

import numpy as np

from kseg import __version__
from kseg.contract import METADATA, ContractError, embedded_labels, read_metadata
from kseg.files import Lock, atomic_folder

logger = logging.getLogger(__name__)


def upgrade_folder(folder, *, name=None, license="", log=logger.info):
    """Upgrade every ``model_*.tflite`` in ``folder`` that carries no embedded metadata yet;
    returns the names of the files upgraded (none when all were done already)."""
    from kseg.export import gpu_delegate, tflite, tflite_metadata
    from kseg.runtime import TFLiteModel

    folder = Path(folder)
    meta = read_metadata(folder)
    if meta["output"]["kind"] != "scores":
        raise ContractError(f"{folder}: a labels export cannot be made client-ready; export the "
                            "run again with the default output")
    classes = meta["classes"]
    files = sorted(folder.glob("model_*.tflite"))
    todo = [f for f in files if embedded_labels(f) is None]
    if not todo:
        log(f"{folder}: every file already carries its metadata")
        return []
    record = {
        "name": name or folder.name,
        "description": (f"{meta['model'].get('name', 'kseg')} semantic segmentation, "
                        f"{len(classes)} classes ({', '.join(classes)}); input "
                        f"{meta['input']['height']}x{meta['input']['width']} RGB uint8, output "
                        f"per-class probabilities. Exported with kseg {meta['kseg_version']}, "
                        f"client metadata added by kseg {__version__}."),
        "version": meta["kseg_version"],
        "author": "kseg",
        "license": license,
    }
    with Lock(folder, advice="wait for it to finish or stop it (kill {pid})"), \
            atomic_folder(folder, create=False) as tmp:
        shutil.copytree(folder, tmp)
        rng = np.random.default_rng(0)
        h, w = meta["input"]["height"], meta["input"]["width"]
        probes = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)]
        for f in todo:
            before = TFLiteModel(f)
            if before.output_shape[-1] == 1:
                raise ContractError(
                    f"{f}: a one-channel (--sigmoid) file; the clients need two-class "
                    "probabilities, which only a new export writes: run `kseg export` on its run")
            new = tmp / f.name
            data = tflite_metadata.embed(tflite.finish(f.read_bytes()), classes=classes, **record)
            new.write_bytes(data)
            after = TFLiteModel(new)
            for image in probes:
                if not np.array_equal(before.labels(image), after.labels(image)):
                    raise ContractError(f"{f}: the upgraded file's argmax differs from the original")
            mode = f.stem.split("_", 1)[1]
            if mode in meta["metrics"]:
                meta["metrics"][mode]["size_bytes"] = new.stat().st_size
            log(f"{f.name}: probabilities output, signature and standard metadata added")
        meta["embedded"] = {**record, "labels_file": tflite_metadata.LABELS_FILE,
                            "labels": list(classes),
                            "activation": "none (the graph ends in a softmax)",
                            "normalization": {"mean": [0.0], "std": [1.0]}}
        meta["gpu_delegate"] = {f.stem.split("_", 1)[1]: gpu_delegate.unsupported(tmp / f.name)
                                for f in files}
        meta.setdefault("upgraded", []).append({"kseg_version": __version__,
                                                "files": [f.name for f in todo]})
        (tmp / METADATA).write_text(json.dumps(meta, indent=2))
    return [f.name for f in todo]
