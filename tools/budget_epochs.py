"""Fit a run's epoch count to a wall-clock budget, from a probe of its first epochs.

    python tools/budget_epochs.py RUN BUDGET_S START_EPOCH_TIME PROBE_EPOCHS [NOTE]

Reads RUN/metrics.json (seconds per epoch, validation and checkpoints included; the first epoch
is left out because it includes tracing), keeps back two epochs plus KSEG_RETRACE_S seconds
(default 60) for the resumed run to reload and trace again, and writes RUN/budget.json
{"epochs": N, ...}. Used by tools/train_camvid.sh and tools/train_isbi.sh.
"""

import json
import os
import sys
import time

RETRACE_S = 60.0  # default reserve for the resumed run to reload and trace; KSEG_RETRACE_S overrides


def fit_epochs(metrics, budget_s, elapsed_s, probe, retrace_s=RETRACE_S):
    if probe < 2 or len(metrics) < probe:
        raise ValueError(f"need {probe} (>= 2) probe epochs in metrics.json, found {len(metrics)}")
    per_epoch = max(entry["seconds"] for entry in metrics[1:probe])
    left = budget_s - elapsed_s - 2 * per_epoch - retrace_s
    return max(probe, probe + int(left // per_epoch)), per_epoch


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    run, budget, start, probe = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    with open(f"{run}/metrics.json") as f:
        metrics = json.load(f)
    epochs, per_epoch = fit_epochs(metrics, budget, time.time() - start, probe,
                                   float(os.environ.get("KSEG_RETRACE_S", RETRACE_S)))
    with open(f"{run}/budget.json", "w") as f:
        json.dump({"epochs": epochs, "seconds_per_epoch": per_epoch, "budget_s": budget,
                   "note": sys.argv[5] if len(sys.argv) > 5 else ""}, f, indent=2)
    print(f"budget: {per_epoch:.1f} s per epoch -> {epochs} epochs in {budget:.0f} s")
