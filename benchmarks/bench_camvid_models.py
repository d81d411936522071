"""Side-by-side latency of the shipped CamVid models, in one process, as ratios.

    python benchmarks/bench_camvid_models.py exported/camvid exported/camvid-fast --runs 30

Every .tflite of every folder is timed on the same 360x480 image (a CamVid val image when
../shared/data is present) with ai-edge-litert (XNNPACK, batch 1) at 1 and 2 threads. The files
take turns, one call each per round, so that whatever else the machine does falls on all of them
alike; the table gives medians, p90 and each file's median relative to the first folder's file
of the same kind (int8 and int8-npu vs int8; float32 or float16 vs the first folder's float file).

"median ms" is the file itself: the network's output tensor, all that MediaPipe Tasks and the
Task Library run before their own post-processing. "mask ms" adds what kseg.runtime does to get
the category mask at the image's size (``TFLiteModel.labels``: for a file at the network's stride,
bilinear upsampling of the scores in numpy, then the argmax; for a full-resolution file, the
argmax alone), the cost a client that upsamples pays on the CPU.

``--mediapipe`` adds a second table: MediaPipe Tasks' ImageSegmenter (CPU, its default threads),
``segment()`` with the category mask at the image's size, the files again taking turns.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.contract import read_metadata
from kseg.export.benchmark import time_calls
from kseg.runtime import TFLiteModel


def _kind(mode):
    return "float" if mode.startswith("float") else "int8" if mode.startswith("int8") else mode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--image", default="../shared/data/camvid/val/images/0016E5_07959.jpg")
    ap.add_argument("--mediapipe", action="store_true",
                    help="also time MediaPipe Tasks' ImageSegmenter (pip install mediapipe)")
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
    print(f"| file | output | size | threads | median ms | p90 ms | median vs {args.folders[0]} "
          "| mask ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for threads in (int(t) for t in args.threads.split(",")):
        models = [TFLiteModel(p, num_threads=threads) for _, _, p, _ in files]
        for m in models:
            time_calls(lambda m=m: m(image), 5, 0)  # warm-up
        times = [[] for _ in models]
        masks = [[] for _ in models]
        for _ in range(args.runs):
            for i, m in enumerate(models):
                times[i].extend(time_calls(lambda m=m: m(image), 1, 0))
                masks[i].extend(time_calls(lambda m=m: m.labels(image), 1, 0))
        medians = {}
        for (folder, mode, path, _), t in zip(files, times):
            medians.setdefault((folder, _kind(mode)), float(np.median(t)))
        for (folder, mode, path, meta), t, mk in zip(files, times, masks):
            base = medians.get((args.folders[0], _kind(mode)))
            ratio = f"{float(np.median(t)) / base:.2f}x" if base else "-"
            out = meta["output"]
            print(f"| `{path}` | {out.get('height', h)}x{out.get('width', w)} | "
                  f"{path.stat().st_size / 1048576:.2f} MiB | {threads} | {np.median(t):.1f} | "
                  f"{np.percentile(t, 90):.1f} | {ratio} | {np.median(mk):.1f} |")
    if args.mediapipe:
        _mediapipe_table(files, image, args.runs)


def _mediapipe_table(files, image, runs):
    """Median / p90 ms of MediaPipe's ``segment()`` (category mask at the image's size)."""
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    segmenters = [vision.ImageSegmenter.create_from_options(vision.ImageSegmenterOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=str(path)),
        output_category_mask=True, output_confidence_masks=False)) for _, _, path, _ in files]
    frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
    for s in segmenters:
        time_calls(lambda s=s: s.segment(frame), 5, 0)
    times = [[] for _ in segmenters]
    for _ in range(runs):
        for i, s in enumerate(segmenters):
            times[i].extend(time_calls(lambda s=s: s.segment(frame), 1, 0))
    print()
    print("| file (MediaPipe ImageSegmenter, CPU, category mask) | median ms | p90 ms |")
    print("| --- | ---: | ---: |")
    for (_, _, path, _), t in zip(files, times):
        print(f"| `{path}` | {np.median(t):.1f} | {np.percentile(t, 90):.1f} |")
    for s in segmenters:
        s.close()


if __name__ == "__main__":
    main()
