"""kseg's commands print kseg's own output: TensorFlow's start-up and converter log lines only with
--verbose."""

import os
import subprocess
import sys

NOISE = ("cuInit", "I0000", "W0000", "absl::InitializeLog", "oneDNN")
KSEG = [sys.executable, "-c", "from kseg.cli import main; main()"]


def _run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KSEG_QUIET")}
    return subprocess.run([*KSEG, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def test_tensorflow_noise_only_with_verbose(tmp_path):
    run = tmp_path / "run"
    proc = _run("train", "--data", "shapes:16", "--image-size", "16", "16", "-o", "depth=1",
                "-o", "base_filters=2", "--epochs", "1", "--out", str(run), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _run("export", str(run), "--tflite", "--quantize", "float32,int8", "--representative",
                "4", "--max-miou-drop", "100", "--out", str(tmp_path / "exp"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "model_int8.tflite" in proc.stdout
    shown = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not shown, shown
    proc = _run("--verbose", "evaluate", str(run), cwd=tmp_path)
    assert proc.returncode == 0 and any(n in proc.stderr for n in NOISE)
