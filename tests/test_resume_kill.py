"""kill -9 in the middle of an epoch, then the same command again: the run resumes after the last
finished epoch and ends where an uninterrupted run ends — with a moving average of the weights
(--ema), whose checkpoints hold the averages and the raw weights in the optimizer's slots."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

CMD = [sys.executable, "-m", "kseg.cli", "train", "--data", "shapes:240", "--image-size", "32", "32",
       "--batch-size", "8", "-o", "depth=2", "-o", "base_filters=4", "-o", "batch_norm=false",
       "--epochs", "3", "--learning-rate", "0.01", "--schedule", "poly", "--warmup-epochs", "0.5",
       "--augment", "light", "--ema", "0.8"]


def _run(out, timeout=300):
    proc = subprocess.run(CMD + ["--out", str(out)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _epoch(out):
    try:
        return json.loads((out / "state.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    _run(reference)

    out = tmp_path / "killed"
    proc = subprocess.Popen(CMD + ["--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while _epoch(out) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _epoch(out) == 1, "the kill should land during epoch 2"

    resumed = _run(out)
    assert "resuming" in resumed.stdout
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert [e["epoch"] for e in got] == [1, 2, 3]  # contiguous and complete
    for a, b in zip(got, want):
        for key in ("loss", "miou", "val_loss", "val_miou"):
            assert a[key] == pytest.approx(b[key], rel=2e-3, abs=2e-4), (a["epoch"], key)
