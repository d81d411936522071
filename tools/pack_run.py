"""Copy a run folder's result without its optimizer state, to move it off a training machine.

    python tools/pack_run.py runs/camvid-gpu OUT_FOLDER

OUT_FOLDER gets config.json, state.json, metrics.json (and sessions.json, budget.json if present) and best.keras
holding the model alone (about a third of a checkpoint with AdamW state). It is a run folder that
``kseg evaluate``, ``kseg export`` and ``kseg report`` accept; it cannot be resumed. Works under any
Keras backend (it runs on the JAX-only GPU machines).
"""

import shutil
import sys
from pathlib import Path


def pack(run, dest):
    from kseg.models import load_model

    run, dest = Path(run), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "state.json", "metrics.json", "sessions.json", "budget.json"):
        if (run / name).is_file():
            shutil.copy(run / name, dest / name)
    model = load_model(run / "best.keras", compile=False)
    tmp = dest / ".best.keras.tmp.keras"
    model.save(tmp)
    tmp.replace(dest / "best.keras")
    return dest / "best.keras"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path = pack(*sys.argv[1:])
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
