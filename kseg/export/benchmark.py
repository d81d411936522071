"""``kseg benchmark exported/NAME``: latency of every exported file beside the Keras model.

For each ``model_<mode>.tflite``: median and p90 over ``runs`` invocations after ``warmup`` ones,
with each thread count asked for (ai-edge-litert, XNNPACK, batch 1, a fixed real-looking image).
The Keras baseline is the run's checkpoint (``run``, else the one metadata.json names,
``RUN_NAME/best.keras``, looked for in the working folder and in ``runs/``; where it is not on
this machine, the exported SavedModel through TensorFlow), called as a traced function on the same image; TensorFlow
uses all cores and cannot change that after start-up, so its thread column says "all".
"""

import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from kseg.contract import read_metadata

logger = logging.getLogger(__name__)


def time_calls(fn, runs, warmup):
    """Milliseconds taken by each of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return np.asarray(times)


def _stats(ms):
    return float(np.median(ms)), float(np.percentile(ms, 90))


def time_tflite(path, image, threads, runs, warmup):
    from kseg.runtime import TFLiteModel

    model = TFLiteModel(path, num_threads=threads)
    return _stats(time_calls(lambda: model(image), runs, warmup))


def _checkpoint(meta, run=None):
    """The export's .keras checkpoint on this machine, or None."""
    named = Path(str(meta.get("model", {}).get("checkpoint", "")))
    if run is not None:
        return Path(run) / named.name
    for candidate in (named, Path("runs") / named):
        if named.name and candidate.is_file():
            return candidate
    return None


def keras_baseline(meta, folder, run=None):
    """(label, callable on a uint8 batch) for the Keras model or, failing that, the SavedModel."""
    import tensorflow as tf

    checkpoint = _checkpoint(meta, run)
    if checkpoint is not None and checkpoint.is_file():
        from kseg.models import load_model, rebuild

        model = load_model(checkpoint, compile=False)
        h, w = meta["input"]["height"], meta["input"]["width"]
        info = meta.get("model", {})
        model, _ = rebuild(model, info["name"], info.get("options", {}), input_shape=(h, w, 3),
                           output_stride=info.get("options", {}).get("output_stride"))
        fn = tf.function(lambda x: model(x, training=False))
        return "Keras (.keras checkpoint)", fn
    saved = tf.saved_model.load(str(Path(folder) / "saved_model"))
    serve = saved.signatures["serving_default"]
    return "SavedModel (TensorFlow)", lambda x: serve(images=x)


def benchmark_folder(folder, runs=50, warmup=5, threads=(1, 2), keras=True, log=logger.info,
                     run=None):
    """Rows of {"model", "threads", "median_ms", "p90_ms", "size_bytes"} for the folder's files."""
    folder = Path(folder)
    meta = read_metadata(folder)
    h, w = meta["input"]["height"], meta["input"]["width"]
    image = np.asarray(_test_image(h, w))
    rows = []
    if keras:
        import tensorflow as tf

        label, fn = keras_baseline(meta, folder, run)
        x = tf.constant(image[None])

        def call():
            out = fn(x)
            np.asarray(next(iter(out.values())) if isinstance(out, dict) else out)

        median, p90 = _stats(time_calls(call, runs, max(warmup, 2)))
        rows.append({"model": label, "threads": "all", "median_ms": median, "p90_ms": p90,
                     "size_bytes": None})
        log(f"{label}: median {median:.1f} ms")
    for mode, record in (meta.get("npu") or {}).items():  # estimated at export, not timed
        from kseg.export.npu import format_record

        log(format_record(f"model_{mode}.tflite", record))
        rows.append({"model": f"{record['compiled_file']} (Vela estimate, NPU only)",
                     "threads": record["accelerator"], "median_ms": record["estimated_ms"],
                     "p90_ms": None, "size_bytes": None, "npu": record})
    for path in sorted(folder.glob("model_*.tflite")):
        for n in threads:
            median, p90 = time_tflite(path, image, n, runs, warmup)
            rows.append({"model": path.name, "threads": n, "median_ms": median, "p90_ms": p90,
                         "size_bytes": path.stat().st_size})
            log(f"{path.name}, {n} thread(s): median {median:.1f} ms, p90 {p90:.1f} ms")
    return rows


def _test_image(h, w):
    """A smooth, textured image (latency does not depend on content, but keep it image-like)."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                    ((x + y) * 7) % 256], axis=-1)
    return rgb.astype(np.uint8)


def format_rows(rows, folder, runs, command=None):
    base = next((r["median_ms"] for r in rows if r["threads"] == "all"), None)
    lines = []
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"`{folder}`: batch 1, {runs} timed runs after warm-up; speed = Keras median / "
              "file median.", "",
              "| model | threads | median ms | p90 ms | size MB | speed vs Keras |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    npu = []
    for r in rows:
        if r.get("npu"):
            npu.append(r["npu"])
            continue
        size = "-" if r["size_bytes"] is None else f"{r['size_bytes'] / 1e6:.2f}"
        speed = "-" if base is None or r["threads"] == "all" else f"{base / r['median_ms']:.2f}x"
        lines.append(f"| {r['model']} | {r['threads']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{size} | {speed} |")
    if npu:
        lines += ["", "NPU compilation at export (Vela's performance estimate of the NPU alone, "
                  "not a measurement):", "",
                  "| compiled file | accelerator | NPU / CPU ops | SRAM KiB | DRAM KiB | "
                  "est. ms | est. inferences/s |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for rec in npu:
            lines.append(f"| {rec['compiled_file']} | {rec['accelerator']} | "
                         f"{rec['npu_operators']} / {rec['cpu_operators']} | "
                         f"{rec['sram_used_kib']:.0f} | {rec['dram_used_kib']:.0f} | "
                         f"{rec['estimated_ms']:.2f} | "
                         f"{rec['estimated_inferences_per_second']:.1f} |")
    return "\n".join(lines)


def command_line():
    return "kseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
