"""Two worker processes on 127.0.0.1 train one run under MultiWorkerMirroredStrategy (kseg's
custom loop, since Keras 3 fit cannot): both finish, with identical weights."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = r"""
import json, sys
import numpy as np
from kseg.train import TrainConfig, train
out, dump = sys.argv[1], sys.argv[2]
options = dict(data="shapes:48", image_size=(32, 32), model="unet",
               model_options={"depth": 2, "base_filters": 4, "batch_norm": False},
               epochs=2, batch_size=4, learning_rate=0.01, strategy="multiworker",
               augment="flip")
options.update(json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
cfg = TrainConfig(**options)
result = train(cfg, out, report=False)
if result.get("chief", True):
    from kseg.models import load_model
    weights = load_model(out + "/last.keras").get_weights()
    print("chief best", result["best_val_miou"], "epochs", result["epochs_done"])
else:
    weights = result["weights"]
np.savez(dump, *weights)
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _two_workers(tmp_path, options=None):
    """Run WORKER as the two workers of one cluster; returns their (stdout, stderr)."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                       "task": {"type": "worker", "index": i}}),
               "CUDA_VISIBLE_DEVICES": ""}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "run"), str(tmp_path / f"w{i}.npz"),
             json.dumps(options or {})],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


@pytest.mark.slow
def test_two_workers_train_to_identical_weights(tmp_path):
    outs = _two_workers(tmp_path)
    assert "chief best" in outs[0][0] and "epochs 2" in outs[0][0]
    a, b = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(a.files) == len(b.files) > 0
    for k in a.files:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
    entries = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in entries] == [1, 2]
    # 48 images, global batch 2 x 4 = 8: six steps per epoch, each worker reading its own shard
    assert all(np.isfinite(e["loss"]) for e in entries)


@pytest.mark.slow
def test_early_stopping_is_the_chiefs_decision_on_every_worker(tmp_path):
    """With a learning rate of 1e-12 val mIoU never improves after epoch 1: patience 1 stops the run
    after epoch 2 of 5. The worker cannot see the chief's metrics; it stops because the chief
    tells it to (were it to train on alone, it would wait in the next all-reduce for ever)."""
    outs = _two_workers(tmp_path, {"data": "shapes:16", "image_size": [16, 16], "epochs": 5,
                                   "learning_rate": 1e-12, "early_stopping": 1})
    assert "chief best" in outs[0][0] and "epochs 2" in outs[0][0]
    entries = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in entries] == [1, 2]
