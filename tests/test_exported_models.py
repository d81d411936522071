"""The models committed under exported/: contract, size budget, and — where the real data is
present — their recorded validation scores reproduced through the TensorFlow-free runtime."""

import json

import numpy as np
import pytest

from conftest import REPO, shared
from kseg.contract import read_metadata
from kseg.data import open_source
from kseg.metrics import confusion_matrix, scores
from kseg.runtime import Segmenter

EXPORTED = REPO / "exported"
# every committed export, those in subfolders (camvid-fast/stride8: the same model's files at the
# network's own stride) too
FOLDERS = sorted(p.parent for p in EXPORTED.rglob("metadata.json"))
IDS = [f.relative_to(EXPORTED).as_posix() for f in FOLDERS]


def _camvid_val(root):
    return open_source(f"camvid:{root}", "val", image_size=(360, 480))


# how each committed model's validation data is opened from ../shared/data
DATA = {
    "camvid": (("camvid",), _camvid_val),
    "camvid-fast": (("camvid",), _camvid_val),
    "camvid-fast/stride8": (("camvid",), _camvid_val),
    "isbi2012": (("isbi2012", "train"), lambda root: open_source(
        str(root), "val", classes=["membrane", "cell"], remap={255: 1}, val_split="last",
        image_size=(512, 512))),
}


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_committed_model_keeps_the_contract_and_size_budget(folder):
    meta = read_metadata(folder)  # validates the metadata
    files = sorted(folder.glob("model_*.tflite"))
    names = {f.name for f in files}
    # int8 for CPUs and NPUs, and one float file (float16 halves float32, which `kseg export`
    # reproduces from the run)
    assert "model_int8.tflite" in names and names & {"model_float16.tflite", "model_float32.tflite"}
    for f in folder.rglob("*"):
        if f.is_file() and "saved_model" not in f.parts:  # SavedModels are not committed
            assert f.stat().st_size < 10_000_000, f"{f}: over the 10 MB budget"
    for f in files:
        seg = Segmenter(f)
        assert (seg.model.height, seg.model.width) == (meta["input"]["height"], meta["input"]["width"])
        assert seg.classes == meta["classes"]
    for f in files:
        assert meta["metrics"][f.stem.split("_", 1)[1]]["size_bytes"] == f.stat().st_size


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_committed_model_reproduces_its_recorded_validation_scores(folder):
    name = folder.relative_to(EXPORTED).as_posix()
    if name not in DATA:
        pytest.skip(f"no validation data known for exported/{name}")
    parts, opener = DATA[name]
    source = opener(shared(*parts))
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["metrics"]["images"] == len(source)
    num_classes = len(meta["classes"])
    for path in sorted(folder.glob("model_*.tflite")):
        mode = path.stem.split("_", 1)[1]
        seg = Segmenter(path)
        matrix = np.zeros((num_classes, num_classes), np.int64)
        for i in range(len(source)):
            image, truth = source.load_numpy(i)
            matrix += np.asarray(confusion_matrix(truth, seg.segment(image), num_classes,
                                                  meta["ignore_index"]), np.int64)
        got = scores(matrix)
        want = meta["metrics"][mode]
        assert got["miou"] == pytest.approx(want["miou"], abs=2e-3), mode
        assert got["pixel_accuracy"] == pytest.approx(want["pixel_accuracy"], abs=2e-3), mode
