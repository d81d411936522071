"""Model zoo table for docs/models.md: parameters, multiply-adds at 512x512, TFLite size, float32
and int8 latency at 512x512 on this machine (ai-edge-litert, XNNPACK, batch 1), the op list.

    python benchmarks/bench_models.py --threads 2 --runs 20 --out docs/models.md

Random weights (latency and size do not depend on them); int8 calibrated on random images.
"""

import argparse
import collections
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COMBOS = [("unet", None), ("fastscnn", None)] + [
    (m, b) for m in ("fcn32s", "fcn16s", "fcn8s", "deeplabv3", "deeplabv3plus")
    for b in ("mobilenetv2", "resnet18", "resnet50")
]


def latency(path, image, threads, runs):
    from ai_edge_litert.interpreter import Interpreter

    from kseg.export.benchmark import time_calls

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]

    def call():
        interp.set_tensor(index, image)
        interp.invoke()

    times = time_calls(call, runs, warmup=3)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--out", help="write the markdown here (default: print)")
    args = ap.parse_args()

    from kseg import models
    from kseg.export import tflite
    from kseg.models.summary import multiply_adds

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, args.size, args.size, 3), dtype=np.uint8)
    calib = rng.integers(0, 256, (8, args.size, args.size, 3), dtype=np.uint8)
    rows, ops_lists = [], {}
    only = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory() as tmp:
        for name, backbone in COMBOS:
            if only and name not in only:
                continue
            opts = {"backbone": backbone} if backbone else {}
            m = models.build(name, num_classes=args.classes, input_shape=(args.size, args.size, 3), **opts)
            row = {"model": name, "backbone": backbone or "(own encoder)", "params": m.count_params(),
                   "macs": multiply_adds(m)}
            for mode in ("float32", "int8"):
                path = Path(tmp) / f"{name}_{backbone}_{mode}.tflite"
                path.write_bytes(tflite.convert(m, args.size, args.size, mode, representative=calib))
                row[f"{mode}_kb"] = path.stat().st_size / 1024
                row[f"{mode}_ms"] = latency(path, image, args.threads, args.runs)
                if mode == "float32":
                    ops_lists[f"{name} / {row['backbone']}"] = collections.Counter(
                        op for op, *_ in tflite.op_report(path))
            rows.append(row)
            print(row, flush=True)

    from kseg.report.tables import cpu_name, write_section

    lines = [
        f"Measured with `python benchmarks/bench_models.py --threads {args.threads} --runs {args.runs}"
        f"{' --only ' + args.only if args.only else ''}` on {platform.machine()}, {cpu_name()} "
        f"({os.cpu_count()} cores), {args.size}x{args.size} input, {args.classes} classes, default widths, "
        f"random weights; latency = median of {args.runs} runs after 3 warm-up runs, ai-edge-litert with "
        f"{args.threads} threads (XNNPACK). The last column says whether int8 paid off in speed on "
        "that CPU; its gain in size holds everywhere.",
        "",
        "| model | backbone | params (M) | multiply-adds (G) | float32 KB | int8 KB | float32 ms | int8 ms | int8/float32 time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['backbone']} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e9:.2f} | "
            f"{r['float32_kb']:.0f} | {r['int8_kb']:.0f} | {r['float32_ms']:.1f} | {r['int8_ms']:.1f} | "
            f"{r['int8_ms'] / r['float32_ms']:.2f} |"
        )
    ops = [f"- **{key}**: " + ", ".join(f"{op} x{n}" for op, n in sorted(counter.items()))
           for key, counter in ops_lists.items()]
    if args.out:  # the two sections of docs/models.md, replaced where they stand
        write_section(args.out, "Model zoo", "\n".join(lines))
        write_section(args.out, "float32 op lists", "\n".join(ops))
    else:
        print("\n".join(["# Model zoo", ""] + lines + ["", "## float32 op lists", ""] + ops))


if __name__ == "__main__":
    main()
