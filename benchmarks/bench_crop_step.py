"""What `kseg train --crop` saves: the training step on whole images against the step on random
windows, same model and loss, measured one after the other in one process (random data; the step
alone, no input pipeline).

    python benchmarks/bench_crop_step.py --size 512 512 --crop 256 256 --batch 4 --out docs/benchmarks.md
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def step_seconds(model, batch, size, num_classes, steps, rng):
    import numpy as np

    x = rng.integers(0, 256, (batch, *size, 3), dtype=np.uint8)
    y = rng.integers(0, num_classes, (batch, *size)).astype(np.int32)
    model.train_on_batch(x, y)  # tracing
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("-o", "--option", action="append", default=None,
                        help="Model option KEY=VALUE, repeatable (default: the ISBI U-Net's "
                        "base_filters=16, depth=4).")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--crop", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--loss", default="ce+dice")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per case (median).")
    parser.add_argument("--out", help="Markdown file for the table (docs/benchmarks.md).")
    args = parser.parse_args(argv)
    args.option = args.option or ["base_filters=16", "depth=4"]

    import numpy as np

    from kseg import losses, models
    from kseg.cli import _parse_options

    options = _parse_options(args.option)
    rng = np.random.default_rng(0)
    rows = []
    for label, size in (("whole image", tuple(args.size)), ("--crop", tuple(args.crop))):
        model = models.build(args.model, num_classes=args.classes, input_shape=(None, None, 3),
                             **options)
        model.compile(optimizer="adamw", loss=losses.get(args.loss, ignore_index=255))
        s = step_seconds(model, args.batch, size, args.classes, args.steps, rng)
        rows.append((label, size, s))
        print(f"{label} {size[0]}x{size[1]} batch {args.batch}: {s:.3f} s/step", flush=True)
    whole = rows[0][2]
    opts = " ".join(f"-o {o}" for o in args.option)
    lines = [f"Command: `python benchmarks/bench_crop_step.py --model {args.model} {opts} --size "
             f"{args.size[0]} {args.size[1]} --crop {args.crop[0]} {args.crop[1]} --batch "
             f"{args.batch} --loss {args.loss}` (Keras on TensorFlow, {os.cpu_count()} cores, "
             f"median of {args.steps} steps after one traced step, random data).", "",
             "| input | batch | s / step | pixels / s | step vs whole image |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for label, size, s in rows:
        lines.append(f"| {label} {size[0]}x{size[1]} | {args.batch} | {s:.3f} | "
                     f"{args.batch * size[0] * size[1] / s / 1e6:.2f} M | {s / whole:.2f}x |")
    body = "\n".join(lines)
    from kseg.report.tables import publish

    publish(body, args.out, "Training on crops (`--crop`): step time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
