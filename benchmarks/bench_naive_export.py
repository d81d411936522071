"""kseg's float32 TFLite export against the naive one (Keras ``model.export(format="litert")``),
same architecture and weights, measured side by side in one run: latency (median and p90 over
``--runs`` invocations after warm-up, ai-edge-litert/XNNPACK), argmax agreement, op counts.

    python benchmarks/bench_naive_export.py --size 512 --threads 2 --runs 50 --out docs/benchmarks.md

Weights are random but batch-norm statistics are randomised too, so an unfolded BN would show.
"""

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def randomise_batchnorm(model, seed=0):
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0, 0.1, beta.shape).astype("float32"),
                               rng.normal(0, 0.1, mean.shape).astype("float32"),
                               rng.uniform(0.5, 1.5, var.shape).astype("float32")])


def timings(path, image, threads, runs):
    from ai_edge_litert.interpreter import Interpreter

    from kseg.export.benchmark import time_calls

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    x = image.astype(inp["dtype"])[None]
    if list(inp["shape"]) != list(x.shape):
        interp.resize_tensor_input(inp["index"], x.shape)
        interp.allocate_tensors()

    def call():
        interp.set_tensor(inp["index"], x)
        interp.invoke()

    ms = time_calls(call, runs, warmup=5)
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    return ms, out


def op_counts(path):
    from kseg.export.tflite import op_report

    return collections.Counter(name for name, *_ in op_report(path))


PROFILE_CUTS = ("aspp_pool", "aspp_project_relu", "decoder_concat", "decoder_sep1_pointwise_relu",
                "decoder_sep2_pointwise_relu", "classifier", "upsample")


def profile(model, size, image, threads, runs):
    """[(layer, median ms)] of float32 files of the network cut after each of PROFILE_CUTS."""
    import keras

    from kseg.export.tflite import convert

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for cut in PROFILE_CUTS:
            sub = keras.Model(model.input, model.get_layer(cut).output)
            path = Path(tmp) / f"{cut}.tflite"
            path.write_bytes(convert(sub, size, size, "float32"))
            out.append((cut, float(np.median(timings(path, image, threads, runs)[0]))))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--profile", action="store_true",
                        help="Also time prefixes of the network (where the time goes).")
    parser.add_argument("--out", help="Markdown file for the table (docs/benchmarks.md).")
    args = parser.parse_args(argv)

    from kseg import models
    from kseg.export.tflite import convert

    size = args.size
    model = models.build("deeplabv3plus", num_classes=21, input_shape=(size, size, 3),
                         backbone="mobilenetv2")
    randomise_batchnorm(model)
    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "kseg.tflite"
        ours.write_bytes(convert(model, size, size, "float32"))
        naive = Path(tmp) / "naive.tflite"
        model.export(str(naive), format="litert", verbose=False)
        image = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
        rows = {}
        for name, path in (("naive `model.export(format=\"litert\")`", naive), ("kseg float32", ours)):
            ms, out = timings(path, image, args.threads, args.runs)
            rows[name] = (ms, out, op_counts(path), path.stat().st_size)
    (naive_ms, naive_out, naive_ops, naive_size), (our_ms, our_out, our_ops, our_size) = rows.values()
    agree = float(np.mean(np.argmax(naive_out, -1) == np.argmax(our_out, -1)))
    speedup = np.median(naive_ms) / np.median(our_ms)
    lines = [
        f"Command: `python benchmarks/bench_naive_export.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"DeepLabv3+ MobileNetV2, {size}x{size}, 21 classes, batch 1, {args.threads} threads, "
        f"{args.runs} runs after 5 warm-up runs, same weights.",
        "",
        "| export | median ms | p90 ms | ops | SPACE_TO_BATCH_ND | MUL+ADD | size MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (ms, _, ops, nbytes) in rows.items():
        lines.append(f"| {name} | {np.median(ms):.1f} | {np.percentile(ms, 90):.1f} | "
                     f"{sum(ops.values())} | {ops.get('SPACE_TO_BATCH_ND', 0)} | "
                     f"{ops.get('MUL', 0) + ops.get('ADD', 0)} | {nbytes / 1e6:.2f} |")
    lines += ["", f"**kseg / naive speed: {speedup:.2f}x** (target >= 1.3x); argmax agreement "
              f"{agree:.4%}.", "",
              "Op lists: naive " + ", ".join(f"{k} {v}" for k, v in sorted(naive_ops.items())),
              "", "kseg " + ", ".join(f"{k} {v}" for k, v in sorted(our_ops.items()))]
    if args.profile:
        lines += ["", "Where the time goes (kseg float32, the network cut after each stage, "
                  "median ms):", "", "| up to | output | median ms |", "| --- | --- | ---: |"]
        for cut, ms in profile(model, size, image, args.threads, args.runs):
            lines.append(f"| {cut} | {'x'.join(str(d) for d in model.get_layer(cut).output.shape[1:])} "
                         f"| {ms:.1f} |")
    body = "\n".join(lines)
    from kseg.report.tables import publish

    publish(body, args.out, "Float32 export: kseg vs naive Keras export")
    return 0 if speedup >= 1.3 and agree == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
