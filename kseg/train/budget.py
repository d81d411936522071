"""A wall-clock budget for a whole run (``kseg train --time-budget 2h``).

The first call trains ``PROBE_EPOCHS`` epochs on a provisional schedule over ``--epochs`` (so the
learning rate barely decays yet), measures the seconds an epoch takes (validation and checkpoint
included; the first epoch, which includes tracing, is left out), and fits the epoch count to what
is left of the budget, keeping back two epochs and ``RETRACE_S`` for the resumed run to reload and
trace again. The count goes to ``RUN/budget.json``; the run then resumes with its schedule rebuilt
over that count, so the poly or cosine decay ends on time. A later call (after an interruption)
keeps the count chosen first.
"""

import re

from kseg.errors import ConfigError

PROBE_EPOCHS = 3
RETRACE_S = 60.0  # reserve for the resumed run to reload and trace again; KSEG_RETRACE_S overrides
BUDGET_FILE = "budget.json"


def parse_duration(text):
    """Seconds in ``text``: ``5400``, ``90m``, ``2h``, ``1h30m``, ``45s``."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != re.sub(r"\s+", "", text):
        raise ConfigError(f"{text!r}: expected a duration such as 5400, 90m, 2h or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def fit_epochs(metrics, budget_s, elapsed_s, probe, retrace_s=RETRACE_S):
    """(epochs, seconds per epoch) that fit ``budget_s`` after ``elapsed_s`` spent on ``probe``
    epochs whose metrics.json entries are ``metrics``."""
    if probe < 2 or len(metrics) < probe:
        raise ConfigError(f"need {probe} (>= 2) probe epochs in metrics.json, found {len(metrics)}")
    per_epoch = max(entry["seconds"] for entry in metrics[1:probe])
    left = budget_s - elapsed_s - 2 * per_epoch - retrace_s
    return max(probe, probe + int(left // per_epoch)), per_epoch
