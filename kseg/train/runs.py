"""Working with finished run folders: comparing their validation curves, and packing one to move.

``compare`` summarises runs by their curves, not only by their best epoch: with a few validation
images the best epoch flatters (it is chosen on the images it is scored on), so the mean over the
last N epochs and over all epochs stand beside it. ``pack`` copies a run's result without its
optimizer state, to move it off a training machine.
"""

import json
from pathlib import Path

from kseg.errors import ConfigError, NotFoundError

PACKED_FILES = ("config.json", "state.json", "metrics.json", "sessions.json", "budget.json")


def curve_summary(entries, last=10):
    """Summary of a run's metrics.json entries: epochs, the best epoch by val mIoU with its val
    pixel accuracy / mIoU, the last-``last`` and all-epoch means of both, and the mean training
    pixel accuracy of the last epochs (on augmented batches as trained, not how well the model
    fits its training images: that is ``kseg evaluate RUN --split train``)."""
    if not entries:
        raise ConfigError("no finished epochs")
    best = max(entries, key=lambda e: e["val_miou"])
    tail = entries[-last:]

    def mean(rows, key):
        return sum(e[key] for e in rows) / len(rows)

    return {
        "epochs": len(entries),
        "best_epoch": best["epoch"],
        "best": (best["val_pixel_accuracy"], best["val_miou"]),
        "last": (mean(tail, "val_pixel_accuracy"), mean(tail, "val_miou")),
        "all": (mean(entries, "val_pixel_accuracy"), mean(entries, "val_miou")),
        "train_last": mean(tail, "pixel_accuracy"),
        "n_last": len(tail),
    }


def compare(runs, last=10, upto=None):
    """``[(run, summary)]`` for run folders ``runs``; ``upto``: only each run's first N epochs
    (to compare a run stopped early with full ones). A run without usable metrics.json raises
    ValueError naming the file."""
    if last < 1 or (upto is not None and upto < 1):
        raise ConfigError("last and upto count epochs: at least 1")
    out = []
    for run in runs:
        path = Path(run) / "metrics.json"
        try:
            entries = json.loads(path.read_text())[:upto]
            out.append((str(run), curve_summary(entries, last)))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return out


def format_comparison(rows, last):
    lines = [f"{'run':<34} {'epochs':>6} {'best (epoch): acc / mIoU':>24} "
             f"{'last ' + str(last) + ' mean':>15} {'all mean':>15} {'train acc':>9}"]
    for run, s in rows:
        lines.append(
            f"{run:<34} {s['epochs']:>6} {'(' + str(s['best_epoch']) + ')':>8} "
            f"{s['best'][0]:.4f} / {s['best'][1]:.4f} {s['last'][0]:.4f} / {s['last'][1]:.4f} "
            f"{s['all'][0]:.4f} / {s['all'][1]:.4f} {s['train_last']:>9.4f}")
    return "\n".join(lines)


def pack(run, dest):
    """Copy run folder ``run`` to ``dest`` with best.keras holding the model alone (about a third
    of a checkpoint with AdamW state). The copy is a run folder that ``kseg evaluate``, ``export``
    and ``report`` accept; it cannot be resumed. Works under any Keras backend. Returns the path
    of the packed best.keras."""
    from kseg.files import atomic_file, write_bytes_atomic
    from kseg.models import load_model
    from kseg.files import checkpoint_problem

    run, dest = Path(run), Path(dest)
    if not (run / "best.keras").is_file():
        raise NotFoundError(f"{run}: no best.keras (not a finished kseg run folder)")
    dest.mkdir(parents=True, exist_ok=True)
    for name in PACKED_FILES:
        if (run / name).is_file():
            write_bytes_atomic(dest / name, (run / name).read_bytes())
    model = load_model(run / "best.keras", compile=False)
    with atomic_file(dest / "best.keras", check=checkpoint_problem) as tmp:
        model.save(tmp)
    return dest / "best.keras"
