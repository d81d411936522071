"""Which ops of a .tflite file the LiteRT GPU delegate would not take.

A GPU delegate runs the ops it accepts and leaves the rest to the CPU; every op it refuses splits
the graph and costs two copies between GPU and CPU memory. ``tf.lite.experimental.Analyzer``'s
``gpu_compatibility=True`` is meant to report this, but the check in TensorFlow 2.21's wheel
accepts everything (it passes TOPK_V2 and SPACE_TO_BATCH_ND), so kseg checks the rules itself,
after TensorFlow's ``tensorflow/lite/tools/versioning/gpu_compatibility.cc``: the ops that file
accepts, and the per-op conditions that matter for segmentation graphs (the types a CAST may
convert, softmax's beta, the int16 dequantize, strided-slice masks, constant axes and paddings).
It reads the flatbuffer with ai-edge-litert's schema module; no TensorFlow.
"""

from collections import Counter

SUPPORTED = frozenset("""
ADD ADD_N AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D CUMSUM DENSIFY DEPTHWISE_CONV_2D
DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP DYNAMIC_UPDATE_SLICE FULLY_CONNECTED GATHER HARD_SWISH
LSTM MAX_POOL_2D MEAN MUL PACK ONE_HOT QUANTIZE RELU_N1_TO_1 PRELU RESHAPE SELECT SELECT_V2 SLICE
SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V STRIDED_SLICE TILE TRANSPOSE TRANSPOSE_CONV RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR RELU RELU6 LEAKY_RELU REDUCE_MAX REDUCE_MIN REDUCE_PROD SUM PAD PADV2
MIRROR_PAD
ABS CEIL COS ELU EXP FLOOR GELU LOG LOGISTIC NEG RSQRT SIGN SIN SQRT SQUARE TANH
ATAN2 DIV EQUAL FLOOR_DIV FLOOR_MOD GREATER GREATER_EQUAL LOGICAL_AND LESS LESS_EQUAL MAXIMUM
MINIMUM NOT_EQUAL POW SQUARED_DIFFERENCE SUB
""".split())
# the only conversions a GPU CAST performs
_CASTS = {("BOOL", "FLOAT16"), ("BOOL", "FLOAT32"), ("FLOAT16", "BOOL"), ("FLOAT32", "BOOL"),
          ("FLOAT32", "FLOAT32"), ("FLOAT32", "INT32"), ("INT32", "FLOAT32"), ("INT32", "INT32")}
_CONST_AXES = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD")
_CONST_SECOND_INPUT = ("RESHAPE", "TILE", "TRANSPOSE", "PAD", "PADV2", "MIRROR_PAD")


def _names(enum_class):
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


def unsupported(path_or_bytes):
    """``["OP: reason (xN)", ...]``: the ops of a .tflite the GPU delegate would leave to the CPU,
    with how many of each; ``[]`` when it would take the whole graph."""
    from ai_edge_litert import schema_py_generated as s

    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb").read()
    model = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    op_names = _names(s.BuiltinOperator)
    type_names = _names(s.TensorType)
    found = Counter()
    for graph in model.subgraphs:
        tensors = graph.tensors

        def const(i):
            b = model.buffers[tensors[i].buffer]
            return b.data is not None and len(b.data) > 0

        def ttype(i):
            return type_names.get(tensors[i].type, str(tensors[i].type))

        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
            ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
            outs = [int(i) for i in (op.outputs if op.outputs is not None else []) if i >= 0]
            reason = None
            if name not in SUPPORTED:
                reason = "not supported"
            elif name == "CAST" and (ttype(ins[0]), ttype(outs[0])) not in _CASTS:
                reason = f"{ttype(ins[0]).lower()} -> {ttype(outs[0]).lower()} not supported"
            elif name == "SOFTMAX" and getattr(op.builtinOptions, "beta", 1.0) != 1.0:
                reason = "beta != 1"
            elif name == "DEQUANTIZE" and ttype(ins[0]) == "INT16":
                reason = "int16 input"
            elif name == "STRIDED_SLICE" and any(
                    getattr(op.builtinOptions, m, 0) for m in ("ellipsisMask", "newAxisMask",
                                                                "shrinkAxisMask")):
                reason = "ellipsis/new-axis/shrink-axis mask"
            elif name in _CONST_AXES and (len(ins) < 2 or not const(ins[1])
                                          or ttype(ins[1]) != "INT32"):
                reason = "axes not constant int32"
            elif name in _CONST_SECOND_INPUT and len(ins) > 1 and not const(ins[1]):
                reason = "second input not constant"
            if reason:
                found[f"{name}: {reason}"] += 1
    return [f"{k} (x{n})" for k, n in sorted(found.items())]
