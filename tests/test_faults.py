"""What machines do to a run, met as a user meets it through `kseg`: a run folder in use, a full
disk, a diverged loss, a damaged checkpoint, SIGTERM and Ctrl-C. Each ends with a message and no
traceback, loses nothing finished before it, and the same command resumes."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import REPO
from kseg.cli import main

TINY = ["--data", "shapes:48", "--image-size", "32", "32", "--batch-size", "8", "-o", "depth=2",
        "-o", "base_filters=4", "--learning-rate", "0.01"]
CLI = [sys.executable, "-m", "kseg.cli", "train"]


def invoke(*args):
    """`kseg ARGS` in this process; a KsegError ends in exit status 1 with `error: ...`, anything
    else would be left in result.exception with its traceback."""
    return CliRunner().invoke(main, [str(a) for a in args])


def _fails_cleanly(result):
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    return result.output


def _state(run):
    try:
        return json.loads((run / "state.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _epochs(run):
    return [e["epoch"] for e in json.loads((run / "metrics.json").read_text())]


def _hidden(folder):
    """Temporaries and locks left in ``folder`` (names starting with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_training_on_a_run_folder_in_use_is_refused(tmp_path):
    run = tmp_path / "run"
    cmd = CLI + TINY + ["--epochs", "50", "--out", str(run)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO)
    try:
        _wait_for(lambda: (run / "sessions.json").is_file(), first)
        second = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=240)
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        assert (f"error: {run} is in use by another kseg process (pid {first.pid}"
                in second.stderr), second.stderr
        assert f"kill {first.pid}" in second.stderr and "another --out" in second.stderr
        sessions = json.loads((run / "sessions.json").read_text())
        assert [s["from_epoch"] for s in sessions] == [0]  # the second wrote nothing
        assert first.poll() is None  # and the first trains on
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 1 and "Traceback" not in err, err
    assert "interrupted (SIGTERM)" in out
    assert _hidden(tmp_path) == []  # the lock went with its process


def test_an_export_to_a_folder_in_use_is_refused_before_any_work(tmp_path):
    from kseg.export import export_run

    out = tmp_path / "exported"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from kseg.files import Lock; "
         "Lock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception) as info:
            export_run(tmp_path / "no-such-run", out)
        assert type(info.value).__name__ == "InUseError", info.value
        assert f"{out} is in use by another kseg process (pid {holder.pid}" in str(info.value)
        assert "another --out" in str(info.value)
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def small_disk(tmp_path):
    """``(folder, fill, free)`` on an 8 MB tmpfs: ``fill()`` leaves 16 KB free (the notes of a run
    fit, a checkpoint does not), ``free()`` gives the space back."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
                            capture_output=True).returncode == 0
    except OSError:
        ok = False
    if not ok:
        pytest.skip("cannot mount a tmpfs here (not root); tests/test_files.py stubs ENOSPC")
    ballast = folder / "ballast"

    def fill():
        with open(ballast, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        os.truncate(ballast, max(0, os.path.getsize(ballast) - 16 * 1024))

    yield folder, fill, ballast.unlink
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_with_a_message_and_the_same_command_resumes(small_disk):
    disk, fill, free = small_disk
    run = disk / "run"
    assert invoke("train", *TINY, "--epochs", 1, "--out", run).exit_code == 0
    fill()
    output = _fails_cleanly(invoke("train", *TINY, "--epochs", 2, "--out", run))
    assert f"error: cannot write {run}/" in output and "free some space" in output, output
    assert "run the same command again" in output
    from kseg.train.rundir import checkpoint_problem

    assert _state(run) == 1 and checkpoint_problem(run / "checkpoints" / "epoch-1.keras") is None
    assert _hidden(run) == [] and _hidden(run / "checkpoints") == []  # no temporary left
    assert _hidden(disk) == []  # nor the lock
    free()
    result = invoke("train", *TINY, "--epochs", 2, "--out", run)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and _epochs(run) == [1, 2]


def test_a_diverged_loss_ends_with_the_message_and_no_traceback(tmp_path):
    run = tmp_path / "run"
    output = _fails_cleanly(invoke("train", *TINY[:-2], "--learning-rate", "1e9", "--optimizer",
                                   "sgd", "--epochs", 2, "--out", run))
    assert "error: loss became" in output and "training stopped" in output, output
    assert "The last good checkpoint is kept: none yet" in output
    assert "Try a lower --learning-rate" in output
    assert _hidden(tmp_path) == []


def test_a_diverged_epoch_names_the_last_good_checkpoint(tmp_path):
    from kseg import models
    from kseg.train.callbacks import CommitEpoch, StopOnNonFinite, TrainingDivergedError
    from kseg.train.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.prepare({"model": "unet"})
    model = models.build("unet", num_classes=2, input_shape=(16, 16, 3), depth=1, base_filters=2)
    run.commit_epoch(model, 1, {"epoch": 1}, 0.5)
    kept = str(run.path / "checkpoints" / "epoch-1.keras")
    with pytest.raises(TrainingDivergedError, match=f"last good checkpoint is kept: {kept}"):
        CommitEpoch(run).on_epoch_end(1, {"loss": math.nan, "val_miou": 0.1})
    stop = StopOnNonFinite(last_good=run.checkpoint_path)
    stop.set_model(model)
    with pytest.raises(TrainingDivergedError, match=f"at epoch 1, batch 3.*kept: {kept}"):
        stop.on_train_batch_end(2, {"loss": math.inf})
    assert run.state()["epoch"] == 1


def test_a_damaged_checkpoint_falls_back_to_the_one_before_or_says_what_to_do(tmp_path):
    run = tmp_path / "run"
    assert invoke("train", *TINY, "--epochs", 2, "--out", run).exit_code == 0
    newest = run / "checkpoints" / "epoch-2.keras"
    # a copy cut short (a power cut before the data reached the disk): last.keras is the same file
    os.truncate(newest, newest.stat().st_size // 2)
    result = invoke("train", *TINY, "--epochs", 3, "--out", run)
    assert result.exit_code == 0, result.output
    assert f"{newest}, the checkpoint of epoch 2, is damaged" in result.output, result.output
    assert "falling back to the checkpoint of epoch 1: epochs 2-2 are trained again" in result.output
    assert "resuming" in result.output and _epochs(run) == [1, 2, 3]
    # both kept checkpoints damaged: nothing to fall back to
    for name in ("epoch-2.keras", "epoch-3.keras"):
        path = run / "checkpoints" / name
        os.truncate(path, path.stat().st_size // 2)
    output = _fails_cleanly(invoke("train", *TINY, "--epochs", 4, "--out", run))
    assert "the checkpoint of epoch 3, is damaged" in output and "no intact earlier" in output
    assert "--overwrite" in output
    assert _state(run) == 3  # nothing was changed
    # a damaged best.keras is named by the commands that read it, too
    best = run / "best.keras"
    os.truncate(best, best.stat().st_size // 2)
    for command in (("evaluate", run), ("export", run, "--out", tmp_path / "exp")):
        output = _fails_cleanly(invoke(*command))
        assert f"{best}: cannot load the model: not a complete .keras file" in output, output


SIGNAL_RUN = CLI + ["--data", "shapes:240", "--image-size", "32", "32", "--batch-size", "8",
                    "-o", "depth=2", "-o", "base_filters=4", "-o", "batch_norm=false",
                    "--epochs", "3", "--learning-rate", "0.01", "--schedule", "poly",
                    "--augment", "light"]


def _train(out):
    proc = subprocess.run(SIGNAL_RUN + ["--out", str(out)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _interrupt_during(out, epoch, sig):
    """Start the run, send ``sig`` once it is into ``epoch``; returns (stdout, stderr)."""
    # SIGINT as a terminal delivers it: a shell starts background jobs (`.ci/run &`) with SIGINT
    # ignored, which their children inherit, and Python then installs no Ctrl-C handler
    proc = subprocess.Popen(SIGNAL_RUN + ["--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: _state(out) >= epoch - 1, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr[-3000:]
    assert "Aborted!" in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert _state(out) == epoch - 1, "the signal should land during the epoch"
    return stdout


@pytest.mark.slow
def test_sigint_and_sigterm_abandon_the_epoch_and_the_same_command_resumes(tmp_path):
    reference = tmp_path / "reference"
    _train(reference)

    out = tmp_path / "interrupted"
    said = _interrupt_during(out, 2, signal.SIGINT)
    assert (f"interrupted (Ctrl-C) during epoch 2: epoch 1 is kept in {out}; the same command "
            f"resumes after epoch 1") in said
    said = _interrupt_during(out, 3, signal.SIGTERM)
    assert (f"interrupted (SIGTERM) during epoch 3: epochs 1-2 are kept in {out}; the same "
            f"command resumes after epoch 2") in said
    assert _hidden(out) == [] and _hidden(out / "checkpoints") == [] and _hidden(tmp_path) == []

    assert "resuming" in _train(out).stdout
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert [e["epoch"] for e in got] == [1, 2, 3]
    for a, b in zip(got, want):
        for key in ("loss", "miou", "val_loss", "val_miou"):
            assert a[key] == pytest.approx(b[key], rel=2e-3, abs=2e-4), (a["epoch"], key)


def test_sigterm_during_an_export_leaves_the_destination_as_it_was(tmp_path):
    run, out = tmp_path / "run", tmp_path / "exported"
    assert invoke("train", *TINY, "--epochs", "1", "--out", run).exit_code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "kseg.cli", "export", str(run), "--tflite", "--quantize",
         "float32,int8", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=REPO)
    # the export has started writing its temporary folder beside the destination
    _wait_for(lambda: any(p.name.endswith(".partial") for p in tmp_path.iterdir()), proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert (f"interrupted (SIGTERM): {out} is as it was before this export; the same command "
            "exports again") in stdout + stderr
    assert not out.exists() and _hidden(tmp_path) == []  # no temporary, no lock left


def test_a_sigterm_that_a_library_turned_into_another_error_is_still_a_sigterm():
    """TensorFlow's tracing can catch the exception a signal handler raises inside it and raise
    another (seen: AttributeError '_type_spec' while an export traced its SavedModel)."""
    from kseg.interrupts import Terminated, sigterm_as_interrupt

    def library_call():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except BaseException:
            raise AttributeError("'list' object has no attribute '_type_spec'") from None

    with pytest.raises(Terminated):
        with sigterm_as_interrupt():
            library_call()
    with pytest.raises(AttributeError):  # without a SIGTERM, errors stay what they are
        with sigterm_as_interrupt():
            raise AttributeError("a real bug")
