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
