"""Checkpoints survive a power cut: each file is synced before its name points at it, and the
folder is synced before an older checkpoint is removed; one damaged later is named, and the run
falls back to the one before it."""

import os

import pytest

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


def _damage(path):
    os.truncate(path, path.stat().st_size // 2)  # cut short, as by a power cut or a copy


def test_a_damaged_checkpoint_is_named_and_the_one_before_is_resumed(tmp_path):
    run = RunDir(tmp_path / "run")
    run.prepare({"model": "unet"})
    model = models.build("unet", num_classes=2, input_shape=(16, 16, 3), depth=1, base_filters=2)
    for epoch, miou in ((1, 0.3), (2, 0.5)):
        run.commit_epoch(model, epoch, {"epoch": epoch, "val_miou": miou}, miou)
    _damage(run.checkpoint_file(2))  # last.keras is the same file
    said = []
    state = run.resume_state(log=said.append)
    assert state == {"epoch": 1, "checkpoint": "checkpoints/epoch-1.keras", "best_miou": 0.3}
    assert run.state() == state and [e["epoch"] for e in run.metrics()] == [1]
    assert said == [f"warning: {run.checkpoint_file(2)}, the checkpoint of epoch 2, is damaged "
                    f"(not a complete .keras file: File is not a zip file); falling back to the "
                    f"checkpoint of epoch 1: epochs 2-2 are trained again"]
    assert os.path.samefile(run.path / "last.keras", run.checkpoint_file(1))
    assert not run.checkpoint_file(2).exists()
    _damage(run.checkpoint_file(1))
    with pytest.raises(rundir.DamagedCheckpointError, match="no intact earlier checkpoint"):
        run.resume_state(log=said.append)


def test_a_damaged_best_model_is_named_and_written_again_by_the_next_epoch(tmp_path):
    from kseg.train.callbacks import CommitEpoch

    run = RunDir(tmp_path / "run")
    run.prepare({"model": "unet"})
    model = models.build("unet", num_classes=2, input_shape=(16, 16, 3), depth=1, base_filters=2)
    commit = CommitEpoch(run)
    commit.set_model(model)
    commit.on_epoch_begin(0)
    commit.on_epoch_end(0, {"loss": 1.0, "val_miou": 0.5})
    _damage(run.path / "best.keras")
    said = []
    state = run.resume_state(log=said.append)
    assert state["epoch"] == 1 and state["best_miou"] is None
    assert said and "best.keras is damaged" in said[0] and not (run.path / "best.keras").exists()
    commit = CommitEpoch(run, best_miou=state["best_miou"])
    commit.set_model(model)
    commit.on_epoch_begin(1)
    commit.on_epoch_end(1, {"loss": 1.0, "val_miou": 0.4})
    assert rundir.checkpoint_problem(run.path / "best.keras") is None


def test_temporaries_of_killed_writes_are_removed_when_the_run_is_taken_up_again(tmp_path):
    run = RunDir(tmp_path / "run")
    run.prepare({"model": "unet"})
    left = [run.path / ".tmp-best.keras", run.path / ".state.json.tmp",  # kseg before kseg.files
            run.path / "checkpoints" / ".epoch-3.keras.4194305-0.partial.keras",
            run.path / f".best.keras.{os.getpid()}-9.partial.keras"]  # even if the pid is reused
    for path in left:
        path.write_bytes(b"x" * 1000)
    (run.path / ".keep").write_text("not kseg's")
    run.prepare({"model": "unet"})
    assert not any(path.exists() for path in left) and (run.path / ".keep").exists()
