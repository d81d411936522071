"""The run directory format, in one place.

    runs/NAME/
      config.json        what was asked for (data, model, training options); identifies the run
      state.json         commit point: last finished epoch, its checkpoint, best val mIoU so far
      last.keras         model + optimizer after the last finished epoch (a hard link to its
                         checkpoint: no second copy)
      best.keras         model with the best val mIoU so far (a file of its own)
      metrics.json       one entry per finished epoch, contiguous from 1
      sessions.json      one entry per `kseg train` call that trained: when, on which backend and
                         devices, from which epoch (a run resumed on another machine lists both)
      checkpoints/       epoch-K.keras of the last KEEP_CHECKPOINTS finished epochs
      logs/              TensorBoard event files
    runs/.NAME.lock      held while a `kseg train` writes the run (kseg.files.Lock)

Crash safety: every file is written complete or not at all (``kseg.files.atomic_file``); a
checkpoint is read back (``checkpoint_problem``) before its name points at it. An epoch is
committed by replacing state.json after its checkpoint is complete; anything newer than state.json
(a metrics entry of an epoch that was not committed) is discarded when the run resumes. The
checkpoint of the epoch before stays until the next one is committed, so a checkpoint damaged
later (a disk fault, a copy cut short) has one to fall back to (``resume_state``).
"""

import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

from kseg.errors import KsegError
from kseg.files import (Lock, atomic_file, checkpoint_problem, ensure_space,
                        write_json_atomic)

logger = logging.getLogger(__name__)

CONFIG = "config.json"
STATE = "state.json"
METRICS = "metrics.json"
SESSIONS = "sessions.json"
LAST = "last.keras"
BEST = "best.keras"
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2  # the committed epoch's, and the one before it to fall back to


class RunConflictError(KsegError, RuntimeError):
    """The run folder belongs to a different configuration."""


class DamagedCheckpointError(KsegError, RuntimeError):
    """The run's checkpoint is damaged and no intact earlier one is kept."""


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _identity(config):
    """The parts of a config that must match to resume: not the epoch count or the early-stopping
    patience (a run may be given more of either), nor the hardware (it may change between
    sessions)."""
    config = json.loads(json.dumps(config))
    for key in ("epochs", "early_stopping", "kseg_version", "strategy"):
        config.pop(key, None)
    return config


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    def file(self, name):
        return self.path / name

    def checkpoint_file(self, epoch):
        return self.path / CHECKPOINTS / f"epoch-{int(epoch)}.keras"

    def lock(self):
        """The lock a training call holds on this run folder (``kseg.files.Lock``)."""
        return Lock(self.path, advice="wait for it to finish or stop it (kill {pid}); to train "
                    "another run at the same time, give it another --out")

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
        (self.path / CHECKPOINTS).mkdir(exist_ok=True)
        self._remove_leftovers()
        write_json_atomic(self.path / CONFIG, config)
        return self.state()

    def _remove_leftovers(self):
        """Temporaries of killed writes (kseg.files' ``.NAME.<pid>-<n>.partial``, and those of
        kseg before it: ``.tmp-NAME``, ``.NAME.tmp``). Called by the training call that holds the
        run's lock, so no other process is writing them."""
        for folder in (self.path, self.path / CHECKPOINTS):
            for entry in folder.iterdir():
                name = entry.name
                if entry.is_file() and name.startswith(".") and (
                        ".partial" in name or name.startswith(".tmp-") or name.endswith(".tmp")):
                    entry.unlink(missing_ok=True)

    def save_best(self, model):
        self._save_model(model, self.path / BEST)

    def commit_epoch(self, model, epoch, entry, best_miou):
        """Make ``epoch`` (1-based) durable: checkpoint (read back), metrics, then the state
        commit point and last.keras; only then do checkpoints older than the one before go."""
        ckpt = self.checkpoint_file(epoch)
        self._save_model(model, ckpt)
        entries = [e for e in self.metrics() if e["epoch"] < epoch] + [entry]
        write_json_atomic(self.path / METRICS, entries)
        self._commit_state({"epoch": epoch, "checkpoint": self._relative(ckpt),
                            "best_miou": best_miou})

    def _commit_state(self, state):
        """Write ``state`` (the commit point), point last.keras at its checkpoint, then remove
        the checkpoints it no longer needs (those after it, and all but the newest
        ``KEEP_CHECKPOINTS`` up to it)."""
        write_json_atomic(self.path / STATE, state)
        ckpt = self.path / state["checkpoint"]
        with atomic_file(self.path / LAST) as tmp:  # a hard link: no copy, replaced atomically
            os.link(ckpt, tmp)
        epoch = int(state["epoch"])
        kept = sorted(e for e in self._checkpoint_epochs() if e <= epoch)[-KEEP_CHECKPOINTS:]
        for e in self._checkpoint_epochs():
            if e not in kept:
                self.checkpoint_file(e).unlink(missing_ok=True)

    def _checkpoint_epochs(self):
        folder = self.path / CHECKPOINTS
        names = os.listdir(folder) if folder.is_dir() else []
        return [int(m.group(1)) for m in map(re.compile(r"epoch-(\d+)\.keras").fullmatch, names) if m]

    def _relative(self, path):
        return str(Path(path).relative_to(self.path))

    def _save_model(self, model, path):
        """``model.save`` to ``path`` complete or not at all, read back before it is named; a disk
        without room for another file the size of the run's last checkpoint is refused first."""
        last = self.path / LAST
        if last.is_file():
            ensure_space(path, last.stat().st_size, margin=0)
        with atomic_file(path, check=checkpoint_problem) as tmp:
            model.save(tmp)

    def checkpoint_path(self):
        ckpt = self.state().get("checkpoint")
        return None if ckpt is None else self.path / ckpt

    def resume_state(self, log=logger.info):
        """The state to resume from, its files checked (``checkpoint_problem``). A damaged
        checkpoint is named; the run falls back to the newest intact earlier checkpoint (the
        epochs after it are trained again), or stops with ``DamagedCheckpointError`` saying what
        to do. A damaged best.keras is named and removed (the next epoch writes it again)."""
        state = self.state()
        if not state["epoch"]:
            return state
        ckpt = self.path / state["checkpoint"]
        problem = checkpoint_problem(ckpt)
        if problem is not None:
            state = self._fall_back(state, ckpt, problem, log)
        best = self.path / BEST
        problem = checkpoint_problem(best) if best.exists() else None
        if problem is not None:
            log(f"warning: {best} is damaged ({problem}); removed, the next epoch writes it again")
            best.unlink()
            state = {**state, "best_miou": None}
            write_json_atomic(self.path / STATE, state)
        return state

    def _fall_back(self, state, ckpt, problem, log):
        epoch = int(state["epoch"])
        for e in sorted(self._checkpoint_epochs(), reverse=True):
            if e < epoch and checkpoint_problem(self.checkpoint_file(e)) is None:
                break
        else:
            raise DamagedCheckpointError(
                f"{ckpt}, the checkpoint of epoch {epoch}, is damaged ({problem}), and no intact "
                f"earlier checkpoint is kept in {self.path / CHECKPOINTS}. Put an intact copy of "
                f"it in its place (from a backup), or train from the start with --overwrite "
                f"(best.keras, if intact, still exports)")
        scores = [x["val_miou"] for x in self.metrics() if x["epoch"] <= e
                  and isinstance(x.get("val_miou"), (int, float)) and math.isfinite(x["val_miou"])]
        log(f"warning: {ckpt}, the checkpoint of epoch {epoch}, is damaged ({problem}); falling "
            f"back to the checkpoint of epoch {e}: epochs {e + 1}-{epoch} are trained again")
        state = {"epoch": e, "checkpoint": self._relative(self.checkpoint_file(e)),
                 "best_miou": max(scores) if scores else None}
        self._commit_state(state)  # removes the damaged checkpoint too
        return state


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
