"""Edits of a converted .tflite graph that make it a file the standard mobile clients read as it is.

- ``append_probabilities``: the converted graph ends in class scores (logits; int8 with a scale and
  zero point in a full-integer file). MediaPipe's ``ImageSegmenter`` and the TFLite Task Library
  show the output tensor to apps as "confidence masks", and the Task Library refuses int8 outputs,
  so the file ends instead in a float32 SOFTMAX over the classes (after a DEQUANTIZE in an int8
  file): probabilities in [0, 1] that sum to 1 per pixel. The softmax runs on the dequantized
  scores, so the argmax — the category mask — is the one the scores gave.
- A ``serving_default`` SignatureDef with a named input (``image``) and output
  (``probabilities``), which the converter does not write for a concrete function.

The graph is edited through the TFLite flatbuffer schema's object API that ai-edge-litert ships
(``ai_edge_litert.schema_py_generated``), so no TensorFlow is needed here.
"""

import numpy as np

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
SIGNATURE_KEY = "serving_default"


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def read_model(data):
    """The ``ModelT`` object tree of .tflite bytes."""
    return _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)


def write_model(model):
    """.tflite bytes of a ``ModelT`` (file identifier TFL3)."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode_index(model, builtin, version):
    """Index of the operator code for ``builtin`` in ``model``, added when missing."""
    s = _schema()
    for i, code in enumerate(model.operatorCodes or []):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, version)
            return i
    code = s.OperatorCodeT()
    code.builtinCode = builtin
    # codes below 127 are also written in the deprecated one-byte field older readers use
    code.deprecatedBuiltinCode = min(builtin, s.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = version
    model.operatorCodes = [*(model.operatorCodes or []), code]
    return len(model.operatorCodes) - 1


def _new_tensor(model, subgraph, like, name, tensor_type):
    """A float tensor of ``like``'s shape with its own empty buffer; returns its index."""
    s = _schema()
    t = s.TensorT()
    t.shape = np.array(like.shape, dtype=np.int32)
    if like.shapeSignature is not None:
        t.shapeSignature = np.array(like.shapeSignature, dtype=np.int32)
    t.type = tensor_type
    t.name = name.encode()
    model.buffers.append(s.BufferT())
    t.buffer = len(model.buffers) - 1
    subgraph.tensors.append(t)
    return len(subgraph.tensors) - 1


def _operator(model, subgraph, builtin, version, inputs, outputs, options_type=0, options=None):
    s = _schema()
    op = s.OperatorT()
    op.opcodeIndex = _opcode_index(model, builtin, version)
    op.inputs = np.array(inputs, dtype=np.int32)
    op.outputs = np.array(outputs, dtype=np.int32)
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    subgraph.operators.append(op)


def _single_graph(model):
    """The one subgraph of a kseg file, with its one input and one output."""
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError("expected one input and one output tensor")
    return graph


def append_probabilities(data):
    """.tflite bytes whose single ``[1, H, W, C]`` scores output is replaced by float32 softmax
    probabilities over C, with a ``serving_default`` signature. Returns the new bytes."""
    s = _schema()
    model = read_model(data)
    graph = _single_graph(model)
    out = int(graph.outputs[0])
    scores = graph.tensors[out]
    if len(scores.shape) != 4:
        raise ValueError(f"expected [1, H, W, C] scores, found shape {list(scores.shape)}")
    if scores.type in (s.TensorType.INT8, s.TensorType.UINT8):
        dequantized = _new_tensor(model, graph, scores, "scores_dequantized", s.TensorType.FLOAT32)
        # DEQUANTIZE of int8 is version 2 of the op (version 1 takes uint8 only)
        _operator(model, graph, s.BuiltinOperator.DEQUANTIZE,
                  2 if scores.type == s.TensorType.INT8 else 1, [out], [dequantized])
        out = dequantized
    elif scores.type != s.TensorType.FLOAT32:
        raise ValueError(f"unsupported scores tensor type {scores.type}")
    probs = _new_tensor(model, graph, scores, OUTPUT_NAME, s.TensorType.FLOAT32)
    options = s.SoftmaxOptionsT()
    options.beta = 1.0
    _operator(model, graph, s.BuiltinOperator.SOFTMAX, 1, [out], [probs],
              s.BuiltinOptions.SoftmaxOptions, options)
    graph.outputs = np.array([probs], dtype=np.int32)
    graph.tensors[int(graph.inputs[0])].name = INPUT_NAME.encode()
    _set_signature(model, int(graph.inputs[0]), probs)
    return write_model(model)


def name_io(data):
    """.tflite bytes whose single input and output are named ``image`` and ``probabilities``, with
    a ``serving_default`` signature: for a graph that ends in probabilities already (a
    full-integer file's int8 softmax, quantized to uint8)."""
    model = read_model(data)
    graph = _single_graph(model)
    inp, out = int(graph.inputs[0]), int(graph.outputs[0])
    graph.tensors[inp].name = INPUT_NAME.encode()
    graph.tensors[out].name = OUTPUT_NAME.encode()
    _set_signature(model, inp, out)
    return write_model(model)


def _set_signature(model, input_index, output_index):
    s = _schema()

    def tensor_map(name, index):
        m = s.TensorMapT()
        m.name = name.encode()
        m.tensorIndex = index
        return m

    sig = s.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY.encode()
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map(INPUT_NAME, input_index)]
    sig.outputs = [tensor_map(OUTPUT_NAME, output_index)]
    model.signatureDefs = [sig]
