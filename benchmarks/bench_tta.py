"""What test-time augmentation buys on a run's validation data: mIoU and per-class IoU without and
with TTA, measured in one process on the same checkpoint.

    python benchmarks/bench_tta.py runs/camvid --tta flip,scales=0.75,1,1.25 \
        --tta flip,rotate=-10,-5,5,10,scales=0.75,1,1.25 --out docs/benchmarks.md
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="Run folder (its best checkpoint and validation data).")
    parser.add_argument("--tta", action="append", required=True, help="TTA spec (repeatable).")
    parser.add_argument("--precise-bn", type=int, default=0,
                        help="First recompute batch-norm statistics on N training batches "
                        "(in memory; the checkpoint is not changed).")
    parser.add_argument("--out", help="Markdown file for the table (docs/benchmarks.md).")
    args = parser.parse_args(argv)

    from kseg.inference import evaluate, load
    from kseg.tta import TTA

    ref = load(args.run)
    val = ref.config.open_source("val")
    if args.precise_bn:
        from kseg.train.precise_bn import recompute_batchnorm, training_batches

        cfg = ref.config
        used = recompute_batchnorm(ref.model, training_batches(
            cfg.open_source("train"), cfg.image_size, cfg.batch_size, args.precise_bn, cfg.seed))
        print(f"batch-norm statistics recomputed on {used} training batches", flush=True)
    rows = []
    for spec in [None, *args.tta]:
        tta = TTA.parse(spec) if spec else None
        t = time.perf_counter()
        result = evaluate(ref, val, tta=tta)
        rows.append((spec or "none", result, time.perf_counter() - t))
        print(f"{spec or 'no TTA'}: mIoU {result['miou']:.4f}", flush=True)
    base = rows[0][1]
    lines = [
        f"Command: `python benchmarks/bench_tta.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Checkpoint `{ref.name}` on {base['images']} images of {base['data']}"
        + (f"; batch-norm statistics recomputed on {args.precise_bn} training batches first."
           if args.precise_bn else "."),
        "",
        "| TTA | passes | mIoU | gain (points) | pixel acc. | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for spec, result, seconds in rows:
        passes = len(TTA.parse(spec).passes()) if spec != "none" else 1
        lines.append(f"| `{spec}` | {passes} | {result['miou']:.4f} | "
                     f"{100 * (result['miou'] - base['miou']):+.2f} | "
                     f"{result['pixel_accuracy']:.4f} | {seconds:.0f} |")
    lines += ["", "Per-class IoU:", "",
              "| class | " + " | ".join(f"`{s}`" for s, _, _ in rows) + " |",
              "| --- |" + " ---: |" * len(rows)]
    for i, name in enumerate(base["classes"]):
        lines.append(f"| {name} | " + " | ".join(f"{r['iou'][i]:.3f}" for _, r, _ in rows) + " |")
    body = "\n".join(lines)
    from kseg.report.tables import publish

    publish(body, args.out, f"Test-time augmentation on {os.path.basename(args.run.rstrip('/'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
