"""The run directory format, in one place.

    runs/NAME/
      config.json        what was asked for (data, model, training options); identifies the run
      state.json         commit point: last finished epoch, its checkpoint, best val mIoU so far
      last.keras         model + optimizer after the last finished epoch
      best.keras         model with the best val mIoU so far
      metrics.json       one entry per finished epoch, contiguous from 1
      sessions.json      one entry per `kseg train` call that trained: when, on which backend and
                         devices, from which epoch (a run resumed on another machine lists both)
      checkpoints/       epoch-K.keras files that state.json points to (older ones are removed)
      logs/              TensorBoard event files

Crash safety: an epoch is committed by atomically replacing state.json after its checkpoint file
is complete; anything newer than state.json (a half-written file, a metrics entry of an epoch that
was not committed) is discarded when the run resumes.
"""

import json
import os
import shutil
from pathlib import Path

from kseg.files import fsync_dir, fsync_file

CONFIG = "config.json"
STATE = "state.json"
METRICS = "metrics.json"
SESSIONS = "sessions.json"
LAST = "last.keras"
BEST = "best.keras"


class RunConflictError(RuntimeError):
    """The run folder belongs to a different configuration."""


def write_json_atomic(path, obj):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _identity(config):
    """The parts of a config that must match to resume (the epoch count may grow)."""
    config = json.loads(json.dumps(config))
    for key in ("epochs", "kseg_version", "strategy"):  # hardware may change between sessions
        config.pop(key, None)
    return config


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    def file(self, name):
        return self.path / name

    @property
    def exists(self):
        return (self.path / CONFIG).is_file()

    def config(self):
        return read_json(self.path / CONFIG)

    def state(self):
        p = self.path / STATE
        return read_json(p) if p.is_file() else {"epoch": 0, "checkpoint": None, "best_miou": None}

    def metrics(self):
        """Entries of committed epochs only."""
        p = self.path / METRICS
        entries = read_json(p) if p.is_file() else []
        return [e for e in entries if e["epoch"] <= self.state()["epoch"]]

    def sessions(self):
        """What trained this run, one entry per training call (``add_session``)."""
        p = self.path / SESSIONS
        return read_json(p) if p.is_file() else []

    def add_session(self, entry):
        """Record a training call before its first epoch (a call that ends before finishing
        one still says where it ran)."""
        write_json_atomic(self.path / SESSIONS, self.sessions() + [entry])

    def best_model_path(self):
        for name in (BEST, LAST):
            if (self.path / name).is_file():
                return self.path / name
        raise FileNotFoundError(f"{self.path}: no {BEST} or {LAST} (has the run finished an epoch?)")

    def prepare(self, config, overwrite=False, normalize=None):
        """Create the run or check that it is the same run; returns the state to resume from.
        ``normalize`` maps a stored config to today's form (new options with their defaults)."""
        if self.path.exists() and overwrite:
            shutil.rmtree(self.path)
        if self.exists:
            old = self.config()
            if normalize is not None:
                old = normalize(old)
            if _identity(old) != _identity(config):
                diff = sorted(_diff_keys(_identity(old), _identity(config)))
                raise RunConflictError(
                    f"{self.path} holds a run with a different configuration "
                    f"(differs in: {', '.join(diff)}); choose another --out or pass --overwrite"
                )
        elif self.path.exists() and any(self.path.iterdir()):
            raise RunConflictError(
                f"{self.path} exists, is not empty and is not a kseg run; choose another --out "
                f"or pass --overwrite"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        write_json_atomic(self.path / CONFIG, config)
        return self.state()

    def save_best(self, model):
        _save_model_atomic(model, self.path / BEST)

    def commit_epoch(self, model, epoch, entry, best_miou):
        """Make ``epoch`` (1-based) durable: checkpoint, metrics, then the state commit point."""
        ckpt = self.path / "checkpoints" / f"epoch-{epoch}.keras"
        _save_model_atomic(model, ckpt)
        entries = [e for e in self.metrics() if e["epoch"] < epoch] + [entry]
        write_json_atomic(self.path / METRICS, entries)
        previous = self.state().get("checkpoint")
        write_json_atomic(
            self.path / STATE,
            {"epoch": epoch, "checkpoint": str(ckpt.relative_to(self.path)), "best_miou": best_miou},
        )
        # last.keras is a hard link to the committed checkpoint (no copy, replaced atomically).
        tmp = self.path / f".{LAST}.tmp"
        if tmp.exists():
            tmp.unlink()
        os.link(ckpt, tmp)
        os.replace(tmp, self.path / LAST)
        fsync_dir(self.path)
        # only now, with the new checkpoint, state and last.keras on disk, does the old one go
        if previous and previous != str(ckpt.relative_to(self.path)):
            (self.path / previous).unlink(missing_ok=True)

    def checkpoint_path(self):
        ckpt = self.state().get("checkpoint")
        return None if ckpt is None else self.path / ckpt


def _save_model_atomic(model, path):
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")  # keras insists on the .keras suffix
    model.save(tmp)
    fsync_file(tmp)  # the data reaches the disk before the name points at it
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _diff_keys(a, b, prefix=""):
    keys = set(a) | set(b) if isinstance(a, dict) and isinstance(b, dict) else set()
    if not keys:
        return [prefix or "(root)"] if a != b else []
    out = []
    for k in keys:
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out.extend(_diff_keys(a[k], b[k], name))
        elif a.get(k) != b.get(k):
            out.append(name)
    return out
