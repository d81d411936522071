"""Checkpoints survive a power cut: each file is synced before its name points at it, and the
folder is synced before the previous checkpoint is removed."""

import os

from kseg import models
from kseg.train import rundir
from kseg.train.rundir import RunDir


def test_commit_syncs_the_new_checkpoint_before_the_old_one_goes(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.prepare({"model": "unet"})
    model = models.build("unet", num_classes=2, input_shape=(16, 16, 3), depth=1, base_filters=2)
    events = []
    real_fsync, real_unlink = os.fsync, os.unlink

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def unlink(path, *a, **kw):
        events.append(("unlink", str(path)))
        return real_unlink(path, *a, **kw)

    run.commit_epoch(model, 1, {"epoch": 1}, 0.1)
    run.commit_epoch(model, 2, {"epoch": 2}, 0.2)
    monkeypatch.setattr(rundir.os, "fsync", fsync)
    monkeypatch.setattr(os, "unlink", unlink)
    run.commit_epoch(model, 3, {"epoch": 3}, 0.3)
    checkpoints = run.path / "checkpoints"
    synced = [p for kind, p in events if kind == "fsync"]
    assert any(p.startswith(str(checkpoints / ".epoch-3.keras.")) and p.endswith(".partial.keras")
               for p in synced)  # the checkpoint's bytes, before its rename
    old = str(checkpoints / "epoch-1.keras")
    removal = events.index(("unlink", old))
    before = [p for kind, p in events[:removal] if kind == "fsync"]
    assert str(run.path) in before and str(checkpoints) in before
    # the epoch before stays, a fallback should the newest be damaged; last.keras is a second
    # name of the newest, not of the only checkpoint
    assert sorted(os.listdir(checkpoints)) == ["epoch-2.keras", "epoch-3.keras"]
    assert os.path.samefile(run.path / "last.keras", checkpoints / "epoch-3.keras")
