import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(*parts):
    """Path under ../shared/data, or skip the test cleanly where the real data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    return path


def make_folder(root, n=3, size=(20, 16), classes=("bg", "fg"), label_value=1):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    rng = np.random.default_rng(0)
    for i in range(n):
        w, h = size
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.jpg")
        lab = np.zeros((h, w), np.uint8)
        lab[: h // 2] = label_value
        Image.fromarray(lab).save(root / "labels" / f"im{i}.png")
    return root


SHAPES_EXPORT_SIZE = 48
SHAPES_EXPORT_MODES = ("float32", "float16", "dynamic", "int8")


@pytest.fixture(scope="session")
def shapes_export(tmp_path_factory):
    """A short shapes run (U-Net, 48x48) exported in every TFLite mode, as a user would."""
    from click.testing import CliRunner

    from kseg.cli import main

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    root = tmp_path_factory.mktemp("shapes-export")
    run = root / "run"
    size = SHAPES_EXPORT_SIZE
    r = invoke("train", "--data", "shapes:64", "--image-size", size, size, "--batch-size", 8,
               "-o", "depth=2", "-o", "base_filters=8", "--learning-rate", "0.01",
               "--epochs", 4, "--out", run)
    assert r.exit_code == 0, r.output
    out = root / "shapes"
    r = invoke("export", run, "--tflite", "--quantize", ",".join(SHAPES_EXPORT_MODES),
               "--representative", 16, "--max-miou-drop", 100, "--license", "test licence",
               "--out", out)
    assert r.exit_code == 0, r.output
    return out
