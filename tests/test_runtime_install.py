"""The deploy runtime installs on a device without TensorFlow, with the one line docs/deploy.md
gives: ``pip install ai-edge-litert numpy pillow && pip install --no-deps <kseg>``."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "exported" / "camvid-fast"

SCRIPT = """
import importlib.util, json, sys
import numpy as np
missing = [m for m in ("tensorflow", "keras", "jax", "cv2", "albumentations")
           if importlib.util.find_spec(m) is None]
from kseg.runtime import Segmenter
image = np.load(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    out[path] = Segmenter(path).segment(image).tolist()
print(json.dumps({"missing": missing, "labels": out}))
"""


@pytest.mark.slow
def test_the_runtime_installs_and_runs_without_tensorflow(tmp_path):
    from kseg.runtime import Segmenter

    files = sorted(str(p) for p in SHIPPED.glob("model_*.tflite"))
    if not files:
        pytest.skip(f"{SHIPPED} is not in this checkout")
    venv = tmp_path / "device"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    deps = subprocess.run([*pip, "ai-edge-litert", "numpy", "pillow"], capture_output=True, text=True)
    if deps.returncode:
        pytest.skip(f"cannot install ai-edge-litert numpy pillow here (no package index?): "
                    f"{deps.stderr.strip().splitlines()[-1:]}")
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True, capture_output=True)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)  # another size than the model's
    np.save(tmp_path / "image.npy", image)
    run = subprocess.run([str(venv / "bin" / "python"), "-c", SCRIPT,
                          str(tmp_path / "image.npy"), *files],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result["missing"]) == {"tensorflow", "keras", "jax", "cv2", "albumentations"}
    assert sorted(result["labels"]) == files
    for path in files:
        device = np.array(result["labels"][path])
        here = Segmenter(path).segment(image)
        assert device.shape == (300, 420)
        np.testing.assert_array_equal(device, here)  # the same answer as with the full install
