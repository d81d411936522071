"""Does the input pipeline keep up with training? Images/s delivered by kseg's tf.data pipeline
(decode + resize + augmentation) next to images/s consumed by a training step of DeepLabv3+
MobileNetV2 at the same size, measured one after the other in one run on this machine.

    python benchmarks/bench_pipeline.py --data camvid:../shared/data/camvid --augment strong \
        --copy-paste 0.5 --object-transform 0.3 --out docs/benchmarks.md

Falls back to the built-in shapes data where CamVid is absent. Goal: ratio >= 1.5.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pipeline_rate(source, size, batch, augmentation, batches):
    from kseg.data.pipeline import training_dataset

    ds, _ = training_dataset(source, size, batch, epochs=100, augment=augmentation)
    it = iter(ds)
    for _ in range(3):  # warm-up: tracing, thread pools, first files
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t)


def training_rate(num_classes, size, batch, steps, model_options):
    import keras
    import numpy as np

    from kseg import losses, models

    model = models.build("deeplabv3plus", num_classes=num_classes, input_shape=(*size, 3),
                         **model_options)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=losses.get("ce"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (batch, *size, 3), dtype=np.uint8)
    y = rng.integers(0, num_classes, (batch, *size), dtype=np.uint8)
    for _ in range(2):  # the first step traces the graph
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - t), model.count_params()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="camvid:../shared/data/camvid")
    parser.add_argument("--image-size", type=int, nargs=2, default=(360, 480))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--augment", default="strong")
    parser.add_argument("--copy-paste", type=float, default=0.0)
    parser.add_argument("--object-transform", type=float, default=0.0)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--width", type=float, default=1.0, help="MobileNetV2 width multiplier.")
    parser.add_argument("--out", help="Markdown file to write the table into (docs/benchmarks.md).")
    args = parser.parse_args(argv)

    from kseg.data import DatasetError, open_source
    from kseg.data.augment import Augmentation

    size = tuple(args.image_size)
    try:
        source = open_source(args.data, "train", image_size=size)
    except DatasetError as exc:
        print(f"{exc}\nfalling back to the built-in shapes data", file=sys.stderr)
        source = open_source("shapes:400", "train", image_size=size)
    aug = Augmentation(args.augment, copy_paste=args.copy_paste,
                       object_transform=args.object_transform, ignore_index=source.ignore_index)
    supply = pipeline_rate(source, size, args.batch_size, aug, args.batches)
    demand, params = training_rate(len(source.classes), size, args.batch_size, args.steps,
                                   {"width": args.width})
    ratio = supply / demand
    aug_text = (f"`{args.augment}`" + (f", copy-paste {args.copy_paste}" if args.copy_paste else "")
                + (f", object moves {args.object_transform}" if args.object_transform else ""))
    body = "\n".join([
        f"Command: `python benchmarks/bench_pipeline.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Data: {source.where}, {size[0]}x{size[1]}, batch {args.batch_size}; augmentation {aug_text}.",
        "",
        "| what | images/s |",
        "| --- | ---: |",
        f"| input pipeline (decode, resize, augment), {args.batches} batches | {supply:.1f} |",
        f"| DeepLabv3+ MobileNetV2 (width {args.width}, {params:,} params) training step | {demand:.2f} |",
        f"| **pipeline / training** | **{ratio:.1f}x** (goal >= 1.5x) |",
        "",
        "Both measured after warm-up in the same process, one after the other, with all cores.",
    ])
    from kseg.report.tables import publish

    publish(body, args.out, "Input pipeline vs training step")
    return 0 if ratio >= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
