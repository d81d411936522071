"""Side-by-side latency of the shipped CamVid models, in one process, as ratios.

    python benchmarks/bench_camvid_models.py exported/camvid exported/camvid-fast --runs 30

Every .tflite of every folder is timed on the same 360x480 image (a CamVid val image when
../shared/data is present) with ai-edge-litert (XNNPACK, batch 1) at 1 and 2 threads. The files
take turns, one call each per round, so that whatever else the machine does falls on all of them
alike; the table gives medians, p90 and each file's median relative to the first folder's file
of the same kind (int8 vs int8; float32 or float16 vs the first folder's float file).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.contract import read_metadata
from kseg.export.benchmark import time_calls
from kseg.runtime import TFLiteModel


def _kind(mode):
    return "float" if mode.startswith("float") else mode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--image", default="../shared/data/camvid/val/images/0016E5_07959.jpg")
    args = ap.parse_args()
    files = []
    for folder in args.folders:
        meta = read_metadata(folder)
        for path in sorted(Path(folder).glob("model_*.tflite")):
            files.append((folder, path.stem.split("_", 1)[1], path, meta))
    h, w = files[0][3]["input"]["height"], files[0][3]["input"]["width"]
    if Path(args.image).is_file():
        image = np.asarray(Image.open(args.image).convert("RGB").resize((w, h), Image.BILINEAR))
    else:
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    print(f"| file | size | threads | median ms | p90 ms | median vs {args.folders[0]} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for threads in (int(t) for t in args.threads.split(",")):
        models = [TFLiteModel(p, num_threads=threads) for _, _, p, _ in files]
        for m in models:
            time_calls(lambda m=m: m(image), 5, 0)  # warm-up
        times = [[] for _ in models]
        for _ in range(args.runs):
            for i, m in enumerate(models):
                times[i].extend(time_calls(lambda m=m: m(image), 1, 0))
        medians = {}
        for (folder, mode, path, _), t in zip(files, times):
            medians.setdefault((folder, _kind(mode)), float(np.median(t)))
        for (folder, mode, path, _), t in zip(files, times):
            base = medians.get((args.folders[0], _kind(mode)))
            ratio = f"{float(np.median(t)) / base:.2f}x" if base else "-"
            print(f"| `{path}` | {path.stat().st_size / 1048576:.2f} MiB | {threads} | "
                  f"{np.median(t):.1f} | {np.percentile(t, 90):.1f} | {ratio} |")


if __name__ == "__main__":
    main()
