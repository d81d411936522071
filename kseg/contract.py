"""The exported-model contract, shared by the exporter and the TensorFlow-free runtime.

``exported/NAME/`` holds ``model_<mode>.tflite`` files and ``metadata.json``. Every file takes one
uint8 RGB tensor ``[1, H, W, 3]`` (0..255; grayscale data is fed as 3 equal channels) and returns
per-pixel class scores ``[1, h, w, C]`` (float, or quantized with its scale and zero point) or class
indices ``[1, H, W]``. Scores come at the input size, or at the network's own stride (output
``"resolution": "model"``, ``h = ceil(H / stride)``; absent: the input size), where the client
upsamples them bilinearly to the image and takes the argmax (``kseg.resize.mask_scores``).
metadata.json (the output's resolution, height, width and stride only for "model")::

    {"format": 1, "classes": [names], "input": {"height": H, "width": W, "channels": 3,
     "dtype": "uint8"}, "output": {"kind": "scores" | "labels", "resolution": "model",
     "height": h, "width": w, "stride": s}, "ignore_index": 255,
     "model": {...build options...}, "kseg_version": "...", "metrics": {...measured at export...}}

This module uses only the standard library.
"""

import json
import zipfile
from pathlib import Path

from kseg.errors import KsegError

FORMAT = 1
METADATA = "metadata.json"
EMBEDDED_LABELS = "labels.txt"  # zipped onto a .tflite with its standard TFLite metadata
OUTPUT_KINDS = ("scores", "labels")
OUTPUT_RESOLUTIONS = ("full", "model")


class ContractError(KsegError, ValueError):
    """An exported model folder or file that does not follow the contract."""


def tflite_name(mode):
    return f"model_{mode}.tflite"


def make_metadata(classes, height, width, output_kind, ignore_index, model, kseg_version, metrics=None,
                  embedded=None, gpu_delegate=None, output_size=None, stride=1, npu=None):
    """metadata.json's dict. ``output_size``: (h, w) of the scores when smaller than the input
    (an export at the network's own ``stride``); ``npu``: per file, what an NPU compiler made of
    it (``kseg.export.npu``)."""
    output = {"kind": output_kind}
    if output_kind == "scores" and output_size and tuple(output_size) != (height, width):
        output.update(resolution="model", height=int(output_size[0]), width=int(output_size[1]),
                      stride=int(stride))
    meta = {
        "format": FORMAT,
        "classes": list(classes),
        "input": {"height": int(height), "width": int(width), "channels": 3, "dtype": "uint8"},
        "output": output,
        "ignore_index": int(ignore_index),
        "model": model,
        "kseg_version": kseg_version,
        "metrics": metrics or {},
    }
    if embedded is not None:  # what each .tflite carries as standard TFLite metadata
        meta["embedded"] = embedded
    if gpu_delegate is not None:  # per file: ops the LiteRT GPU delegate would not take
        meta["gpu_delegate"] = gpu_delegate
    if npu:
        meta["npu"] = npu
    validate_metadata(meta, "metadata")
    return meta


def validate_metadata(meta, where):
    """Raise ContractError naming ``where`` and the first problem found."""

    def fail(problem):
        raise ContractError(f"{where}: {problem}")

    if not isinstance(meta, dict):
        fail("metadata must be a JSON object")
    if meta.get("format") != FORMAT:
        fail(f"unsupported metadata format {meta.get('format')!r} (this kseg reads {FORMAT})")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        fail("'classes' must be a non-empty list of class names")
    inp = meta.get("input")
    if not isinstance(inp, dict):
        fail("'input' is missing")
    for key in ("height", "width"):
        if not isinstance(inp.get(key), int) or inp[key] < 1:
            fail(f"input.{key} must be a positive integer, got {inp.get(key)!r}")
    if inp.get("channels") != 3 or inp.get("dtype") != "uint8":
        fail("input must be 3-channel uint8 (RGB)")
    kind = (meta.get("output") or {}).get("kind")
    if kind not in OUTPUT_KINDS:
        fail(f"output.kind must be one of {', '.join(OUTPUT_KINDS)}, got {kind!r}")
    output = meta.get("output") or {}
    if output.get("resolution", "full") not in OUTPUT_RESOLUTIONS:
        fail(f"output.resolution must be one of {', '.join(OUTPUT_RESOLUTIONS)}, got "
             f"{output.get('resolution')!r}")
    for key in ("height", "width"):
        if key in output and (not isinstance(output[key], int) or output[key] < 1
                              or output[key] > inp[key]):
            fail(f"output.{key} must be a positive integer up to input.{key}, got "
                 f"{output[key]!r}")
    if not isinstance(meta.get("ignore_index"), int):
        fail("'ignore_index' must be an integer")
    return meta


def read_metadata(folder):
    path = Path(folder) / METADATA
    if not path.is_file():
        raise ContractError(f"{path}: missing (an exported model folder needs its {METADATA})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: not valid JSON ({exc})") from None
    return validate_metadata(meta, str(path))


def embedded_labels(path):
    """The class names a .tflite file carries in its standard TFLite metadata (the labels file
    zipped onto its end), or None when it carries none."""
    try:
        with zipfile.ZipFile(path) as zf:
            if EMBEDDED_LABELS not in zf.namelist():
                return None
            text = zf.read(EMBEDDED_LABELS).decode("utf-8")
    except zipfile.BadZipFile:
        return None
    except UnicodeDecodeError:
        raise ContractError(f"{path}: its embedded {EMBEDDED_LABELS} is not UTF-8 text") from None
    return [line for line in text.split("\n") if line != ""]


def check_embedded_labels(path, classes):
    """Raise ContractError when ``path`` embeds class names other than ``classes``
    (metadata.json's)."""
    embedded = embedded_labels(path)
    if embedded is not None and embedded != list(classes):
        raise ContractError(
            f"{path}: its embedded labels ({', '.join(embedded)}) disagree with metadata.json's "
            f"classes ({', '.join(classes)}); the file and its metadata.json do not belong together")
