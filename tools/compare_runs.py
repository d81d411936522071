"""Compare training runs by their validation curves, not only by their best epoch: with a few
validation images the best epoch flatters (it is chosen on the images it is scored on), so the
mean over the last N epochs and over all epochs are printed beside it.

    python tools/compare_runs.py runs/isbi-ftl-ce-dice runs/isbi-ftl-ce-lovasz --last 10

Reads each run's metrics.json (the per-epoch log `kseg train` writes); prints, per run: epochs,
the best epoch by val mIoU with its val pixel accuracy / mIoU, the last-N and all-epoch means of
both, and the mean training pixel accuracy of the last N epochs (measured on augmented training
batches as they were trained on, so not how well the model fits its training images: that is
`kseg evaluate RUN --split train`). ``--upto N`` summarises only the first N epochs of every run,
to compare a run stopped early with full ones.
"""

import argparse
import json
from pathlib import Path


def curve_summary(entries, last=10):
    """Summary dict of a run's metrics.json entries (see the module docstring)."""
    if not entries:
        raise ValueError("no finished epochs")
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--last", type=int, default=10, help="epochs in the tail mean (default 10)")
    p.add_argument("--upto", type=int, help="summarise only the first N epochs of each run")
    args = p.parse_args(argv)
    if args.last < 1 or (args.upto is not None and args.upto < 1):
        p.error("--last and --upto count epochs: at least 1")
    print(f"{'run':<34} {'epochs':>6} {'best (epoch): acc / mIoU':>24} "
          f"{'last ' + str(args.last) + ' mean':>15} {'all mean':>15} {'train acc':>9}")
    for run in args.runs:
        path = Path(run) / "metrics.json"
        try:
            entries = json.loads(path.read_text())[:args.upto]
            s = curve_summary(entries, args.last)
        except (OSError, ValueError, KeyError) as exc:
            p.error(f"{path}: {exc}")
        print(f"{run:<34} {s['epochs']:>6} {'(' + str(s['best_epoch']) + ')':>8} "
              f"{s['best'][0]:.4f} / {s['best'][1]:.4f} {s['last'][0]:.4f} / {s['last'][1]:.4f} "
              f"{s['all'][0]:.4f} / {s['all'][1]:.4f} {s['train_last']:>9.4f}")


if __name__ == "__main__":
    main()
