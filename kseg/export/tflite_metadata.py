"""Standard TFLite model metadata, embedded in every exported .tflite file.

MediaPipe Tasks' ``ImageSegmenter`` (Android, iOS, web, Python) and the TFLite Task Library read a
model's description from a ``TFLITE_METADATA`` flatbuffer inside the file (schema
``metadata_schema.fbs``, file identifier ``M001``) and its class names from a labels file zipped
onto the end of the file. kseg writes:

- the model's name, description, version, author and licence;
- the input as an RGB image with normalization mean 0 / std 1 (the model normalises inside the
  graph, so clients hand over raw 0..255 pixels) and stats 0..255;
- the output as a segmentation mask (a grayscale image per class, content dimensions 1..2) with
  ``labels.txt`` attached as ``TENSOR_AXIS_LABELS``: one class name per line, line i = class i;
- MediaPipe's image-segmenter options (custom metadata ``SEGMENTER_METADATA``, identifier
  ``V001``) with activation NONE: the file already ends in a softmax, so no client applies another.

Why written here, field by field, with the ``flatbuffers`` runtime: MediaPipe's own metadata
writer fails to import from its wheel (a compiled helper is missing), and tflite-support's writer
is unmaintained, has no wheels past Python 3.11, pins numpy<2 and needs libusb. Tables are filled
by field name: ``SCHEMA`` lists each table's fields in the published schemas' order, so the slot
numbers are stated once. (Generating the Python object API with ``flatc`` would add a build step
and a compiler for the dozen tables used here.) ``tests/test_mobile_clients.py`` reads the result
back with MediaPipe's generated schema code and runs it in both clients; the shipped files in
``exported/`` are byte-reproducible, which pins this writer's output. Nothing here imports
TensorFlow.
"""

import io
import zipfile

from kseg.errors import ConfigError

METADATA_NAME = b"TFLITE_METADATA"
LABELS_FILE = "labels.txt"
SEGMENTER_METADATA = "SEGMENTER_METADATA"
# custom_metadata (1.5.0) is the newest field written: the parser version a reader needs
MIN_PARSER_VERSION = "1.5.0"

# enum values of metadata_schema.fbs
_IMAGE_PROPERTIES = 2  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union
_RGB, _GRAYSCALE = 1, 2  # ColorSpaceType
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_ACTIVATION_NONE = 0  # image_segmenter_metadata_schema.fbs: NONE, SIGMOID, SOFTMAX


# Each table's fields in the order the schemas declare them (a field's slot is its index);
# ``name:kind`` marks a scalar field and its type, every other field holds an offset (a string,
# a vector or another table). From metadata_schema.fbs (tflite-support) and, for
# ImageSegmenterOptions, MediaPipe's image_segmenter_metadata_schema.fbs.
SCHEMA = {
    "ModelMetadata": ("name", "description", "version", "subgraph_metadata", "author", "license",
                      "associated_files", "min_parser_version"),
    "SubGraphMetadata": ("name", "description", "input_tensor_metadata",
                         "output_tensor_metadata", "input_process_units", "output_process_units",
                         "associated_files", "input_tensor_groups", "output_tensor_groups",
                         "custom_metadata"),
    "TensorMetadata": ("name", "description", "dimension_names", "content", "process_units",
                       "stats", "associated_files"),
    "Content": ("content_properties_type:uint8", "content_properties", "range"),
    "ImageProperties": ("color_space:int8", "default_size"),
    "ImageSize": ("width:uint32", "height:uint32"),
    "ValueRange": ("min:int32", "max:int32"),
    "ProcessUnit": ("options_type:uint8", "options"),
    "NormalizationOptions": ("mean", "std"),
    "Stats": ("max", "min"),
    "AssociatedFile": ("name", "description", "type:int8", "locale", "version"),
    "CustomMetadata": ("name", "data"),
    "ImageSegmenterOptions": ("activation:int8", "min_parser_version"),
}


class _Writer:
    """Tables of a flatbuffer, written bottom-up (children before parents), by field name."""

    def __init__(self):
        import flatbuffers

        self.b = flatbuffers.Builder(1024)

    def string(self, s):
        return self.b.CreateString(s) if s is not None else None

    def offsets(self, items):
        self.b.StartVector(4, len(items), 4)
        for off in reversed(items):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def floats(self, values):
        self.b.StartVector(4, len(values), 4)
        for v in reversed(values):
            self.b.PrependFloat32(float(v))
        return self.b.EndVector()

    def ubytes(self, data, alignment=16):
        self.b.StartVector(1, len(data), alignment)
        for v in reversed(data):
            self.b.PrependUint8(v)
        return self.b.EndVector()

    def table(self, kind, **fields):
        """A ``kind`` table (a key of ``SCHEMA``) with ``fields`` by name: offsets (None leaves
        a field out) and scalars, which are always written (a reader sees the value even when
        it is the schema default)."""
        slots = {}
        for slot, spec in enumerate(SCHEMA[kind]):
            name, _, scalar = spec.partition(":")
            slots[name] = (slot, scalar)
        unknown = set(fields) - set(slots)
        if unknown:
            raise KeyError(f"{kind} has no field(s) {sorted(unknown)}")
        self.b.StartObject(len(slots))
        for name, value in fields.items():
            slot, scalar = slots[name]
            if not scalar:
                if value is not None:
                    self.b.PrependUOffsetTRelativeSlot(slot, value, 0)
                continue
            prepend = {"int8": self.b.PrependInt8, "uint8": self.b.PrependUint8,
                       "int32": self.b.PrependInt32, "uint32": self.b.PrependUint32}[scalar]
            prepend(int(value))
            self.b.Slot(slot)
        return self.b.EndObject()

    def finish(self, root, identifier):
        self.b.Finish(root, file_identifier=identifier)
        return bytes(self.b.Output())


def segmenter_options(activation=_ACTIVATION_NONE):
    """MediaPipe's ``ImageSegmenterOptions`` flatbuffer (identifier ``V001``)."""
    w = _Writer()
    version = w.string("1.0.0")
    root = w.table("ImageSegmenterOptions", min_parser_version=version, activation=activation)
    return w.finish(root, b"V001")


def model_metadata(*, name, description, version, author, license, classes, height, width,
                   output_size=None):
    """The ``ModelMetadata`` flatbuffer (identifier ``M001``) of a kseg segmentation model;
    ``output_size`` (h, w): scores smaller than the input (a file at the network's stride)."""
    out_h, out_w = output_size or (height, width)
    smaller = (out_h, out_w) != (height, width)
    w = _Writer()

    def associated_file(file_name, file_description, file_type):
        n, d = w.string(file_name), w.string(file_description)
        return w.table("AssociatedFile", name=n, description=d, type=file_type)

    def image_content(color_space, default_size=None, dims=None):
        size = None
        if default_size is not None:
            size = w.table("ImageSize", width=default_size[1], height=default_size[0])
        props = w.table("ImageProperties", default_size=size, color_space=color_space)
        value_range = None
        if dims is not None:
            value_range = w.table("ValueRange", min=dims[0], max=dims[1])
        return w.table("Content", content_properties=props, range=value_range,
                       content_properties_type=_IMAGE_PROPERTIES)

    # input: raw RGB pixels; the (mean 0, std 1) normalization leaves them as they are
    norm = w.table("NormalizationOptions", mean=w.floats([0.0]), std=w.floats([1.0]))
    unit = w.table("ProcessUnit", options=norm, options_type=_NORMALIZATION_OPTIONS)
    stats = w.table("Stats", max=w.floats([255.0]), min=w.floats([0.0]))
    input_md = w.table(
        "TensorMetadata",
        name=w.string("image"),
        description=w.string(f"RGB image, {width}x{height} (width x height), uint8 0..255; "
                             "normalization is inside the model"),
        content=image_content(_RGB, default_size=(height, width)),
        process_units=w.offsets([unit]),
        stats=stats)

    # output: per-class probability masks, labelled
    labels = associated_file(LABELS_FILE, "Class names, one per line (line i = class i).",
                             _TENSOR_AXIS_LABELS)
    output_md = w.table(
        "TensorMetadata",
        name=w.string("probabilities"),
        description=w.string(f"Per-pixel class probabilities [1, {out_h}, {out_w}, "
                             f"{len(classes)}] (softmax over the classes); the category mask is "
                             "their argmax."
                             + (" Smaller than the input: upsample them bilinearly to the "
                                "image, then take the argmax." if smaller else "")),
        content=image_content(_GRAYSCALE, dims=(1, 2)),
        stats=w.table("Stats", max=w.floats([1.0]), min=w.floats([0.0])),
        associated_files=w.offsets([labels]))

    options = segmenter_options()
    custom = w.table("CustomMetadata", name=w.string(SEGMENTER_METADATA), data=w.ubytes(options))
    subgraph = w.table("SubGraphMetadata",
                       input_tensor_metadata=w.offsets([input_md]),
                       output_tensor_metadata=w.offsets([output_md]),
                       custom_metadata=w.offsets([custom]))
    root = w.table("ModelMetadata",
                   name=w.string(name),
                   description=w.string(description),
                   version=w.string(version),
                   subgraph_metadata=w.offsets([subgraph]),
                   author=w.string(author),
                   license=w.string(license),
                   min_parser_version=w.string(MIN_PARSER_VERSION))
    return w.finish(root, b"M001")


def labels_text(classes):
    for c in classes:
        if not c or "\n" in c or "\r" in c:
            raise ConfigError(f"class name {c!r} cannot be written as one line of {LABELS_FILE}")
    return "".join(f"{c}\n" for c in classes)


def embed(data, *, classes, name, description, version, author="kseg", license=""):
    """.tflite bytes with the metadata above added as the ``TFLITE_METADATA`` buffer and
    ``labels.txt`` zipped onto the end (the layout the TFLite metadata populator writes)."""
    from kseg.export import tflite_graph

    model = tflite_graph.read_model(data)
    if any(m.name == METADATA_NAME for m in (model.metadata or [])):
        raise RuntimeError("the model already carries TFLITE_METADATA")
    graph = model.subgraphs[0]
    out_shape = [int(d) for d in graph.tensors[int(graph.outputs[0])].shape]
    in_shape = [int(d) for d in graph.tensors[int(graph.inputs[0])].shape]
    if len(out_shape) != 4 or out_shape[3] != len(classes):
        raise ConfigError(f"output shape {out_shape} does not hold scores for {len(classes)} classes")
    meta = model_metadata(name=name, description=description, version=version, author=author,
                          license=license, classes=list(classes), height=in_shape[1],
                          width=in_shape[2], output_size=(out_shape[1], out_shape[2]))
    from ai_edge_litert import schema_py_generated as s
    import numpy as np

    buffer = s.BufferT()
    buffer.data = np.frombuffer(meta, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = s.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    packed = io.BytesIO(tflite_graph.write_model(model))
    with zipfile.ZipFile(packed, "a", compression=zipfile.ZIP_STORED) as zf:
        # a fixed date: the same model gives the same bytes (a re-export adds nothing to git)
        entry = zipfile.ZipInfo(LABELS_FILE, date_time=(1980, 1, 1, 0, 0, 0))
        zf.writestr(entry, labels_text(classes))
    return packed.getvalue()
