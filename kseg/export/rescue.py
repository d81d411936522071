"""Accuracy rescue for int8 files: keep the layers that quantization hurts most in float.

``tf.lite.experimental.QuantizationDebugger`` runs the fully quantized graph beside float on a few
calibration images and reports, per quantized tensor, the error against float. Layers are ranked by
RMSE / quantization scale (how many quantization steps the error spans: the debugger's own
"suspect layer" measure); the top 1, 2, 4, 8, ... are denylisted (left in float, with QUANTIZE /
DEQUANTIZE around them) until the file's mIoU drop fits the budget. The search stops at half the
ranked layers (``MAX_FLOAT_SHARE``): a file with most of its layers in float is no longer an int8
file, each try costs a conversion and a verification, and with every layer denylisted the
debugger has nothing quantized left to run.
"""

import logging
import csv
import io
import math

import numpy as np

logger = logging.getLogger(__name__)

MAX_FLOAT_SHARE = 0.5  # of the ranked layers, at most, kept in float


def rank_layers(converter, debug_images):
    """[(tensor name, op name, rmse / scale)] of the fully quantized graph, worst first."""
    import tensorflow as tf

    from kseg.export.tflite import calibration

    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=calibration(debug_images))
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    ranked = []
    for row in csv.DictReader(io.StringIO(buf.getvalue())):
        try:
            scale, mse = float(row["scale"]), float(row["mean_squared_error"])
        except (TypeError, ValueError):
            continue
        if scale > 0 and math.isfinite(mse):
            ranked.append((row["tensor_name"], row["op_name"], math.sqrt(mse) / scale))
    ranked.sort(key=lambda r: -r[2])
    return ranked


def selective(converter, debug_images, denylisted):
    """Flatbuffer bytes with ``denylisted`` tensors' ops left in float, the rest int8."""
    import tensorflow as tf

    from kseg.export.tflite import calibration

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylisted))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=calibration(debug_images), debug_options=options)
    return debugger.get_nondebug_quantized_model()


def rescue(make_converter, debug_images, measure_drop, budget, log=logger.info, finish=None):
    """Find the fewest worst-ranked layers to keep in float so that ``measure_drop(bytes)`` (mIoU
    points lost against Keras) is at most ``budget``.

    ``make_converter()`` returns a fresh int8 converter; ``finish(bytes)``, if given, turns each
    try into the file as it will be written (``kseg.export.tflite.finish``). Returns ``(bytes,
    float layers, drop, tries)``; ``bytes`` is None when even keeping ``MAX_FLOAT_SHARE`` of the
    ranked layers in float does not fit (the layers returned are then the most that were tried).
    """
    ranked = rank_layers(make_converter(), debug_images)
    names = [name for name, _, _ in ranked]
    most = max(1, int(len(names) * MAX_FLOAT_SHARE))
    tries = []
    k = 1
    while names:
        k = min(k, most)
        chosen = names[:k]
        data = selective(make_converter(), debug_images, chosen)
        if finish is not None:
            data = finish(data)
        drop = float(measure_drop(data))
        tries.append({"float_layers": k, "miou_drop_points": drop})
        log(f"int8 rescue: {k} layer(s) in float -> loses {drop:.2f} mIoU points (budget {budget})")
        if drop <= budget:
            return data, chosen, drop, tries
        if k == most:
            break
        k *= 2
    return None, names[:k], (tries[-1]["miou_drop_points"] if tries else np.nan), tries
