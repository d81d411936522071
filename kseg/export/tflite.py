"""TFLite conversion of a Keras model at a fixed size (batch 1, uint8 RGB input).

The converter starts from a concrete function of the model (its variables frozen into constants):
4x faster than converting the SavedModel, with identical output.

Modes: ``float32``; ``float16`` (weights stored as float16); ``dynamic`` (int8 weights, float
activations); ``int8`` (full-integer post-training quantization, per-channel weights, calibrated on
representative images; uint8 image input, integer graph to the last layer).

Every ``scores`` file ends in float32 per-pixel class probabilities (``kseg.export.tflite_graph``:
a softmax, after a DEQUANTIZE in int8 files) and has a ``serving_default`` signature, so MediaPipe
and the Task Library read it as it is; a binary sigmoid model gives two classes (1 - p, p).
``labels`` files (argmax in the graph, int32 ``[1, H, W]``) are for kseg's runtime only.
"""

import numpy as np
import tensorflow as tf

from kseg.errors import ConfigError


MODES = ("float32", "float16", "dynamic", "int8")
QUANTIZED = ("dynamic", "int8")  # judged by mIoU drop; the float modes by argmax agreement
OUTPUTS = ("scores", "labels")
# ops allowed to run in float in an int8 graph: the conversions at its ends
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
# ...and the float softmax that turns its dequantized scores into the output probabilities
OUTPUT_OPS = ("SOFTMAX",)


def _serving_fn(model, output):
    def scores(images):
        s = model(images, training=False)
        if s.shape[-1] == 1:  # binary sigmoid logit z: the softmax of (0, z) is (1 - p, p)
            s = tf.concat([tf.zeros_like(s), s], axis=-1)
        return {"scores": s}

    def labels(images):
        s = model(images, training=False)
        if s.shape[-1] == 1:  # binary sigmoid output
            return {"labels": tf.cast(s[..., 0] > 0, tf.int32)}
        return {"labels": tf.argmax(s, axis=-1, output_type=tf.int32)}

    if output not in OUTPUTS:
        raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return tf.function(scores if output == "scores" else labels)


def convert(model, height, width, mode="float32", representative=None, output="scores"):
    """TFLite flatbuffer bytes of ``model`` at ``height`` x ``width`` in ``mode``; ``int8`` needs
    ``representative``, an iterable of uint8 images ``[H, W, 3]`` (a few hundred from the training
    set). ``output="labels"`` puts the argmax in the graph: the file returns int32 ``[1, H, W]``."""
    from kseg.quiet import quiet_stderr

    converter = make_converter(model, height, width, mode, representative, output)
    with quiet_stderr():  # the converter's MLIR passes log warnings from C++
        data = converter.convert()
    return finish(data, output)


def finish(data, output="scores"):
    """Converter output -> the file kseg writes: a ``scores`` graph ends in probabilities and gets
    its signature (``kseg.export.tflite_graph``); a ``labels`` graph is left as converted."""
    from kseg.export.tflite_graph import append_probabilities

    return append_probabilities(data) if output == "scores" else data


def calibration(images):
    """A representative-dataset generator over uint8 images ``[H, W, 3]``."""
    images = list(images)
    if not images:
        raise ConfigError("int8 quantization needs at least one representative image")

    def gen():
        for image in images:
            yield [np.asarray(image, np.uint8)[None]]  # a list: calibrates by input index

    return gen


def make_converter(model, height, width, mode="float32", representative=None, output="scores"):
    """The configured ``tf.lite.TFLiteConverter`` behind ``convert``."""
    if mode not in MODES:
        raise ConfigError(f"unknown TFLite mode {mode!r}; available: {', '.join(MODES)}")
    spec = tf.TensorSpec([1, int(height), int(width), 3], tf.uint8, name="images")
    fn = _serving_fn(model, output).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn])
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative is None:
            raise ConfigError("int8 quantization needs representative images")
        gen = calibration(representative)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        if output == "scores":
            converter.inference_output_type = tf.int8
    return converter


def op_report(path):
    """[(op name, input dtypes, output dtypes, reads a graph input?, writes a graph output?)] of a
    .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    graph_inputs = {d["index"] for d in interp.get_input_details()}
    graph_outputs = {d["index"] for d in interp.get_output_details()}
    report = []
    for op in interp._get_ops_details():  # noqa: SLF001  (the public API has no op list)
        ins = [i for i in op["inputs"] if i >= 0]
        outs = [i for i in op["outputs"] if i >= 0]
        report.append((op["op_name"], [dtypes[i] for i in ins], [dtypes[i] for i in outs],
                       bool(graph_inputs & set(ins)), bool(graph_outputs & set(outs))))
    return report


def float_ops(path):
    """Ops of a quantized graph that compute in float, besides the input/output conversions
    (QUANTIZE, DEQUANTIZE, the CAST of the uint8 image input that feeds QUANTIZE, and the softmax
    that writes the output probabilities)."""
    out = []
    for name, ins, outs, from_input, to_output in op_report(path):
        if (name in BOUNDARY_OPS or (name == "CAST" and from_input)
                or (name in OUTPUT_OPS and to_output)):
            continue
        if any(t.startswith("float") for t in ins + outs):
            out.append(name)
    return out
