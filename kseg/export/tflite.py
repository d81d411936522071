"""TFLite conversion of a Keras model at a fixed size (batch 1, uint8 RGB input).

The converter starts from a concrete function of the model (its variables frozen into constants):
4x faster than converting the SavedModel, with identical output.

Modes: ``float32``; ``float16`` (weights stored as float16); ``dynamic`` (int8 weights, float
activations); ``int8`` (full-integer post-training quantization, per-channel weights, calibrated on
representative images; uint8 image input, integer graph to the last layer).

``int8-npu`` is the full-integer file for NPUs (Arm Ethos-U through Vela, NNAPI accelerators):
uint8 image input taken through the input quantization (scale 1, zero point 0: raw pixels, the
normalisation inside the integer graph), every resize as matrix products
(``kseg.export.forms.for_npu``), an int8 softmax and uint8 probabilities out (scale 1/256): no
float operator anywhere, and the same uint8-in, uint8-out file runs in MediaPipe and the Task
Library.

``resolution="model"`` ends a graph at the network's own stride (``kseg.export.forms``): the
client upsamples the probabilities to the image (bilinear, then the argmax).

Every other ``scores`` file ends in float32 per-pixel class probabilities (``kseg.export.tflite_graph``:
a softmax, after a DEQUANTIZE in int8 files) and has a ``serving_default`` signature, so MediaPipe
and the Task Library read it as it is; a binary sigmoid model gives two classes (1 - p, p).
``labels`` files (argmax in the graph, int32 ``[1, H, W]``) are for kseg's runtime only.
"""

import numpy as np
import tensorflow as tf

from kseg.errors import ConfigError


MODES = ("float32", "float16", "dynamic", "int8", "int8-npu")
QUANTIZED = ("dynamic", "int8", "int8-npu")  # judged by mIoU drop; float modes by agreement
FULL_INTEGER = ("int8-npu",)  # integer input and output, no float operator
OUTPUTS = ("scores", "labels")
# ops allowed to run in float in an int8 graph: the conversions at its ends
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
# ...and the float softmax that turns its dequantized scores into the output probabilities
OUTPUT_OPS = ("SOFTMAX",)


def _serving_fn(model, output, softmax=False):
    def scores(images):
        s = model(images, training=False)
        if s.shape[-1] == 1:  # binary sigmoid logit z: the softmax of (0, z) is (1 - p, p)
            s = tf.concat([tf.zeros_like(s), s], axis=-1)
        if softmax:  # in the graph (quantized with it); other files get theirs after conversion
            return {"probabilities": tf.nn.softmax(s, axis=-1)}
        return {"scores": s}

    def labels(images):
        s = model(images, training=False)
        if s.shape[-1] == 1:  # binary sigmoid output
            return {"labels": tf.cast(s[..., 0] > 0, tf.int32)}
        return {"labels": tf.argmax(s, axis=-1, output_type=tf.int32)}

    if output not in OUTPUTS:
        raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return tf.function(scores if output == "scores" else labels)


def convert(model, height, width, mode="float32", representative=None, output="scores",
            resolution="full"):
    """TFLite flatbuffer bytes of ``model`` at ``height`` x ``width`` in ``mode``; ``int8`` and
    ``int8-npu`` need ``representative``, an iterable of uint8 images ``[H, W, 3]`` (a few
    hundred from the training set). ``output="labels"`` puts the argmax in the graph: the file
    returns int32 ``[1, H, W]``. ``resolution="model"``: scores at the network's own stride."""
    from kseg.quiet import quiet_stderr

    converter = make_converter(model, height, width, mode, representative, output, resolution)
    with quiet_stderr():  # the converter's MLIR passes log warnings from C++
        data = converter.convert()
    return finish(data, output, mode)


def finish(data, output="scores", mode="float32"):
    """Converter output -> the file kseg writes: a ``scores`` graph ends in probabilities and gets
    its signature (``kseg.export.tflite_graph``); a full-integer file has its softmax already and
    gets the signature only; a ``labels`` graph is left as converted."""
    from kseg.export.tflite_graph import append_probabilities, name_io

    if output != "scores":
        return data
    if mode in FULL_INTEGER:
        return name_io(data)
    return append_probabilities(data)


def calibration(images, dtype=np.uint8):
    """A representative-dataset generator over uint8 images ``[H, W, 3]``, fed as ``dtype``."""
    images = list(images)
    if not images:
        raise ConfigError("int8 quantization needs at least one representative image")

    def gen():
        for image in images:
            yield [np.asarray(image, np.uint8).astype(dtype)[None]]  # a list: by input index

    return gen


def _full_range(images):
    """``images`` with one pixel of the first set to 0 and one to 255 in every channel, so that a
    float input calibrates to exactly 0..255: its uint8 quantization (scale 1, zero point 0) then
    takes raw pixels."""
    images = [np.asarray(im, np.uint8) for im in images]
    if images:
        first = images[0].copy()
        first[0, 0], first[0, -1] = 0, 255
        images[0] = first
    return images


def export_form(model, mode="float32", resolution="full"):
    """The Keras model a file of ``mode`` at ``resolution`` is converted from
    (``kseg.export.forms``)."""
    from kseg.export import forms

    if resolution not in forms.RESOLUTIONS:
        raise ConfigError(f"output resolution must be one of {', '.join(forms.RESOLUTIONS)}, "
                          f"got {resolution!r}")
    if mode in FULL_INTEGER:
        model = forms.for_npu(model)
    if resolution == "model":
        model, _ = forms.at_model_resolution(model)
    return model


def make_converter(model, height, width, mode="float32", representative=None, output="scores",
                   resolution="full"):
    """The configured ``tf.lite.TFLiteConverter`` behind ``convert``."""
    if mode not in MODES:
        raise ConfigError(f"unknown TFLite mode {mode!r}; available: {', '.join(MODES)}")
    npu = mode in FULL_INTEGER
    if npu and output != "scores":
        raise ConfigError(f"{mode} files return probabilities (NPU compilers do not map "
                          "ARG_MAX reliably); use --output scores")
    form = export_form(model, mode, resolution)
    spec = tf.TensorSpec([1, int(height), int(width), 3], tf.float32 if npu else tf.uint8,
                         name="images")
    fn = _serving_fn(form, output, softmax=npu).get_concrete_function(spec)
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
    elif npu:
        if representative is None:
            raise ConfigError(f"{mode} quantization needs representative images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration(_full_range(representative), np.float32)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
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


def float_operators(path):
    """Every op of a .tflite file that reads or writes a float tensor (a full-integer file has
    none)."""
    return [name for name, ins, outs, _, _ in op_report(path)
            if any(t.startswith("float") for t in ins + outs)]
