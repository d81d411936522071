"""Training cost of the CamVid recipes on this machine: one training step (batch 8, 360x480, the
recipes' model options, class-weighted CE, AdamW) of each model (and of Fast-SCNN with its
auxiliary heads, ``--aux-loss-weight``), timed in one process, and the
seconds an epoch of CamVid's 367 training images would take at that rate (46 steps; the input
pipeline and validation come on top). Random data; medians after one traced step.

    python benchmarks/bench_camvid_train_step.py --steps 5
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# the models of tools/train_camvid.sh (gpu preset: exported/camvid) and tools/train_camvid_fast.sh;
# (name, options, auxiliary heads)
RECIPES = {
    "deeplabv3plus (exported/camvid)": ("deeplabv3plus", dict(
        backbone="mobilenetv2", width=1.0, aspp_channels=128, low_level_channels=48,
        decoder_channels=96), False),
    "fastscnn (exported/camvid-fast)": ("fastscnn", {}, False),
    "fastscnn + auxiliary heads (--aux-loss-weight 0.4)": ("fastscnn", {}, True),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--only", help="run the recipes whose label contains this text")
    args = ap.parse_args()
    import keras
    import numpy as np

    from kseg import losses, models

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch, 360, 480, 3), dtype=np.uint8)
    y = rng.integers(0, 11, (args.batch, 360, 480)).astype(np.int32)
    rows = []
    for label, (name, opts, aux) in RECIPES.items():
        if args.only and args.only not in label:
            continue
        model = models.build(name, num_classes=11, input_shape=(360, 480, 3), **opts)
        loss = losses.SparseCrossEntropy(class_weights=[1.0] * 11)
        if aux:
            model = models.auxiliary.add_heads(model, models.auxiliary_taps(name))
            aux_strides = models.auxiliary.strides(model)
            loss = losses.DeepSupervision(loss, loss, [0.4] * len(aux_strides), aux_strides)
        model.compile(keras.optimizers.AdamW(1e-3), loss)
        model.train_on_batch(x, y)
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - t)
        params = models.auxiliary.inference_model(model).count_params()
        rows.append((label, params, float(np.median(times))))
    base = rows[0][2]
    print(f"| model | parameters | s per step (batch {args.batch}) | s per epoch (46 steps) | vs first |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, params, s in rows:
        print(f"| {label} | {params:,} | {s:.2f} | {46 * s:.0f} | {s / base:.2f}x |")


if __name__ == "__main__":
    main()
