"""kseg.files: complete-or-absent files and folders, one writer per target, and writes on a full
disk that end with a message naming the path (a small tmpfs where mounting works, else a stubbed
fsync that raises ENOSPC, as a network file system's can)."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO
from kseg import files
from kseg.errors import KsegError, StorageError
from kseg.files import InUseError, Lock, atomic_file, atomic_folder, clean_leftovers


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """``(folder, fill, free)``: files written under ``folder`` after ``fill()`` find no space
    (a 4 MB tmpfs filled up to its last few KB; or, where mounting fails, ``fsync`` stubbed to
    raise ENOSPC) until ``free()``."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    except OSError:  # no mount command
        mounted = False
    ballast = folder / "ballast"

    def fill():
        if mounted:
            with open(ballast, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            # a few KB left: the small notes fit, a model does not
            os.truncate(ballast, os.path.getsize(ballast) - 16 * 1024)
        else:
            def no_space(path):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

            monkeypatch.setattr(files, "fsync_file", no_space)

    def free():
        if mounted:
            ballast.unlink()
        else:
            monkeypatch.undo()

    yield folder, fill, free
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)  # noqa: S603


def _tiny_model():
    from kseg import models

    return models.build("unet", num_classes=2, input_shape=(32, 32, 3), depth=2, base_filters=4)


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and _hidden(tmp_path) == []
    files.write_json_atomic(target, {"new": 1})
    assert json.loads(target.read_text()) == {"new": 1} and _hidden(tmp_path) == []


def test_a_full_disk_is_a_storage_error_naming_the_path(full_disk):
    folder, fill, free = full_disk
    target = folder / "best.keras"
    files.write_bytes_atomic(target, b"old")
    fill()
    with pytest.raises(StorageError) as info:
        files.write_bytes_atomic(target, os.urandom(64 * 1024))
    message = str(info.value)
    assert isinstance(info.value, KsegError) and info.value.errno == errno.ENOSPC
    assert f"cannot write {target}: no space left on the device" in message
    assert "run the same command again" in message
    assert target.read_bytes() == b"old" and _hidden(folder) == []  # nothing half-written left
    free()
    files.write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_an_export_folder_on_a_full_disk_is_a_storage_error_and_leaves_nothing(full_disk):
    folder, fill, free = full_disk
    out = folder / "exported"
    with atomic_folder(out) as tmp:
        (tmp / "model.tflite").write_bytes(b"old")
    fill()
    with pytest.raises(StorageError, match=f"cannot write {out}: no space left on the device"):
        with atomic_folder(out) as tmp:
            (tmp / "model.tflite").write_bytes(os.urandom(64 * 1024))
    assert (out / "model.tflite").read_bytes() == b"old" and _hidden(folder) == []
    # a library's own error that says so (TensorFlow's SavedModel writer) is one too
    free()
    with pytest.raises(StorageError, match=f"cannot write {out}: no space left on the device"):
        with atomic_folder(out) as tmp:
            raise RuntimeError(f"{tmp}/saved_model.pb.tmp1; No space left on device")
    assert (out / "model.tflite").read_bytes() == b"old" and _hidden(folder) == []


def test_a_model_saved_on_a_full_disk_keeps_the_last_good_checkpoint(full_disk):
    from kseg.train.rundir import RunDir, checkpoint_problem

    folder, fill, free = full_disk
    run = RunDir(folder / "run")
    run.prepare({"model": "unet"})
    model = _tiny_model()
    run.commit_epoch(model, 1, {"epoch": 1}, 0.1)
    fill()
    with pytest.raises(StorageError) as info:
        run.commit_epoch(model, 2, {"epoch": 2}, 0.2)
    assert str(run.checkpoint_file(2)) in str(info.value)
    assert run.state()["epoch"] == 1 and checkpoint_problem(run.checkpoint_file(1)) is None
    assert os.listdir(run.path / "checkpoints") == ["epoch-1.keras"]  # no temporary left
    with pytest.raises(StorageError, match="no space left"):  # Keras's own write, no check first
        with atomic_file(run.path / "best.keras", check=checkpoint_problem) as tmp:
            model.save(tmp)
    assert _hidden(run.path) == [] and not (run.path / "best.keras").exists()
    free()
    run.commit_epoch(model, 2, {"epoch": 2}, 0.2)
    assert run.state()["epoch"] == 2


def test_a_cache_too_big_for_the_disk_is_refused_before_it_is_written(tmp_path, monkeypatch):
    from conftest import make_folder
    from kseg.data import FolderSource
    from kseg.data.batches import write_cache

    source = FolderSource(make_folder(tmp_path / "d", n=4), "train", val_fraction=0)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    read = []
    monkeypatch.setattr(source, "load_numpy", lambda i: read.append(i))
    with pytest.raises(StorageError, match=r"needs about .* KB and only 1 KB is free"):
        write_cache(tmp_path / "cache.npy", source, (16, 16))
    assert read == [] and not (tmp_path / "cache.npy").exists()


def test_two_readers_of_one_new_cache_file_build_it_once(tmp_path, monkeypatch):
    import threading

    from conftest import make_folder
    from kseg.data import FolderSource
    from kseg.data.batches import write_cache

    source = FolderSource(make_folder(tmp_path / "d", n=4), "train", val_fraction=0)
    read, real = [], source.load_numpy

    def slow_read(i):
        read.append(i)
        time.sleep(0.05)
        return real(i)

    monkeypatch.setattr(source, "load_numpy", slow_read)
    path = tmp_path / "cache.npy"
    readers = [threading.Thread(target=write_cache, args=(path, source, (16, 16)))
               for _ in range(2)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert sorted(read) == [0, 1, 2, 3] and path.is_file()  # the second waited, then read it
    assert _hidden(tmp_path) == []


HOLD = textwrap.dedent("""
    import sys, time
    from kseg.files import Lock
    Lock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(120)
""")


def _holder(target):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path):
    target = tmp_path / "run"
    proc = _holder(target)
    try:
        with pytest.raises(InUseError) as info:
            Lock(target, advice="stop it (kill {pid}) or choose another --out").acquire()
        message = str(info.value)
        assert f"{target} is in use by another kseg process (pid {proc.pid}" in message
        assert f"kill {proc.pid}" in message and "another --out" in message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    said = []
    with Lock(target, log=said.append) as lock:  # the kernel dropped the dead process's lock
        assert json.loads(lock.file.read_text())["pid"] == os.getpid()
    assert said == [f"{target}: taking over the lock of pid {proc.pid}, which ended without "
                    f"releasing it"]
    assert not lock.file.exists()  # released: nothing left beside the target


def test_a_waiting_writer_gets_the_lock_when_the_holder_ends(tmp_path):
    target = tmp_path / "cache.npy"
    proc = _holder(target)
    said = []
    start = time.time()
    killer = subprocess.Popen(["sh", "-c", f"sleep 1; kill {proc.pid}"])
    with Lock(target, wait=True, log=said.append):
        assert time.time() - start > 0.5
    killer.wait()
    proc.wait()
    assert said and f"being written by pid {proc.pid}" in said[0]


SWAP_KILLED = textwrap.dedent("""
    import os, signal, sys
    from kseg import files
    files._RENAMEAT2 = None          # the two-rename swap of systems without an atomic exchange
    real = os.replace
    def replace(a, b):
        if ".old" in str(b):
            real(a, b)
            os.kill(os.getpid(), signal.SIGKILL)   # killed between the two renames
        return real(a, b)
    os.replace = replace
    with files.atomic_folder(sys.argv[1]) as tmp:
        (tmp / "model.tflite").write_text("new")
""")


def test_a_folder_swap_killed_between_its_renames_is_put_back(tmp_path):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "model.tflite").write_text("old")
    proc = subprocess.run([sys.executable, "-c", SWAP_KILLED, str(out)], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and any(".old" in name for name in _hidden(tmp_path))
    clean_leftovers(out)  # what the next writer of the folder does first
    assert (out / "model.tflite").read_text() == "old" and _hidden(tmp_path) == []
    with atomic_folder(out) as tmp:
        (tmp / "model.tflite").write_text("new")
    assert (out / "model.tflite").read_text() == "new" and _hidden(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(files, "_RENAMEAT2", None)
    out = tmp_path / "demo"
    with atomic_folder(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_folder(out) as tmp:
            (tmp / "a").write_text("2")
            raise ValueError("verification failed")
    assert (out / "a").read_text() == "1" and _hidden(tmp_path) == []
    with atomic_folder(out) as tmp:
        (tmp / "b").write_text("2")
    assert os.listdir(out) == ["b"] and _hidden(tmp_path) == []


def test_leftovers_of_dead_writers_are_cleaned_and_live_ones_kept(tmp_path):
    target = tmp_path / "report.html"
    dead = tmp_path / f".report.html.{2**22 + 1}-0.partial.html"  # above Linux's pid_max
    live = tmp_path / f".report.html.{os.getppid()}-0.partial.html"
    dead.write_text("x")
    live.write_text("y")
    files.write_text_atomic(target, "page")
    assert not dead.exists() and live.exists() and target.read_text() == "page"
