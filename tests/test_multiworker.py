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
import sys
import numpy as np
from kseg.train import TrainConfig, train
out, dump = sys.argv[1], sys.argv[2]
cfg = TrainConfig(data="shapes:48", image_size=(32, 32), model="unet",
                  model_options={"depth": 2, "base_filters": 4, "batch_norm": False},
                  epochs=2, batch_size=4, learning_rate=0.01, strategy="multiworker",
                  augment="flip")
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


@pytest.mark.slow
def test_two_workers_train_to_identical_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                       "task": {"type": "worker", "index": i}}),
               "CUDA_VISIBLE_DEVICES": ""}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "run"), str(tmp_path / f"w{i}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "chief best" in outs[0][0] and "epochs 2" in outs[0][0]
    a, b = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(a.files) == len(b.files) > 0
    for k in a.files:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
    entries = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in entries] == [1, 2]
    # 48 images, global batch 2 x 4 = 8: six steps per epoch, each worker reading its own shard
    assert all(np.isfinite(e["loss"]) for e in entries)
