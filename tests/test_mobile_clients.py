"""Exported files work as they are in the standard mobile clients: MediaPipe Tasks'
``ImageSegmenter`` (the C++ core behind its Android, iOS, web and Python APIs) and, where
tflite-support can run, the TFLite Task Library's ``ImageSegmenter``. Every mode of a short
shapes run is exported and segmented by the client; its category mask must equal kseg.runtime's."""

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
from click.testing import CliRunner

from kseg.cli import main
from kseg.contract import ContractError, embedded_labels, read_metadata
from kseg.export import tflite_graph, tflite_metadata
from kseg.runtime import Segmenter, TFLiteModel

from conftest import SHAPES_EXPORT_MODES as MODES
from conftest import SHAPES_EXPORT_SIZE as SIZE


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def exported(shapes_export):
    return shapes_export


def _images(n=4, size=SIZE):
    """Shapes images the model has not trained on (the val split), at the model's size."""
    from kseg.data.shapes import ShapesSource

    source = ShapesSource("val", count=n, height=size, width=size, seed=7)
    return [source.load_numpy(i)[0] for i in range(n)]


def _mediapipe_segment(path, images):
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageSegmenterOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=str(path)),
        output_category_mask=True, output_confidence_masks=True)
    masks, confidences = [], []
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        labels = list(segmenter.labels)
        for image in images:
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                data=np.ascontiguousarray(image)))
            h, w = image.shape[:2]
            masks.append(result.category_mask.numpy_view().reshape(h, w).astype(np.int32))
            confidences.append(np.stack([c.numpy_view().reshape(h, w)
                                         for c in result.confidence_masks], axis=-1))
    return labels, masks, confidences


def test_metadata_json_records_what_every_file_embeds(exported):
    meta = read_metadata(exported)
    classes = meta["classes"]
    assert meta["embedded"]["labels"] == classes and meta["embedded"]["license"] == "test licence"
    assert meta["embedded"]["name"] == "shapes"
    for mode in MODES:
        path = exported / f"model_{mode}.tflite"
        assert embedded_labels(path) == classes
        # only the input's uint8 -> float cast is left to the CPU by a GPU delegate
        assert meta["gpu_delegate"][mode] == ["CAST: uint8 -> float32 not supported (x1)"]
        assert meta["metrics"][mode]["size_bytes"] == path.stat().st_size  # as shipped
        model = TFLiteModel(path)
        assert model.output["dtype"] == np.float32
        signatures = model.interpreter.get_signature_list()
        assert signatures == {"serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}}


@pytest.mark.parametrize("mode", MODES)
def test_mediapipe_reads_every_mode_as_it_is(exported, mode):
    path = exported / f"model_{mode}.tflite"
    images = _images()
    labels, masks, confidences = _mediapipe_segment(path, images)
    assert labels == read_metadata(exported)["classes"]
    runtime = TFLiteModel(path)
    agree = total = 0
    for image, mask, conf in zip(images, masks, confidences):
        assert conf.min() >= 0 and conf.max() <= 1
        np.testing.assert_allclose(conf.sum(-1), 1.0, atol=1e-4)
        ours = runtime.labels(image)
        agree += int(np.sum(mask == ours))
        total += mask.size
    assert agree / total >= (1.0 if mode == "float32" else 0.999), (mode, agree / total)


def test_embedded_metadata_follows_the_published_schema(exported):
    """Read back with MediaPipe's generated schema code, which kseg's writer does not use."""
    mp = pytest.importorskip("mediapipe")
    root = Path(mp.__file__).parent / "tasks" / "metadata"

    def load(name):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    schema = load("metadata_schema_py_generated")
    segmenter_schema = load("image_segmenter_metadata_schema_py_generated")
    model = tflite_graph.read_model((exported / "model_int8.tflite").read_bytes())
    entry = next(m for m in model.metadata if m.name == b"TFLITE_METADATA")
    raw = bytearray(model.buffers[entry.buffer].data.tobytes())
    assert schema.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0)
    md = schema.ModelMetadataT.InitFromPackedBuf(raw, 0)
    assert md.name == b"shapes" and md.license == b"test licence"
    assert md.minParserVersion == tflite_metadata.MIN_PARSER_VERSION.encode()
    sub = md.subgraphMetadata[0]
    image = sub.inputTensorMetadata[0]
    assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    assert (image.content.contentProperties.defaultSize.width,
            image.content.contentProperties.defaultSize.height) == (SIZE, SIZE)
    norm = image.processUnits[0].options
    assert list(norm.mean) == [0.0] and list(norm.std) == [1.0]
    assert list(image.stats.min) == [0.0] and list(image.stats.max) == [255.0]
    probs = sub.outputTensorMetadata[0]
    assert (probs.content.range.min, probs.content.range.max) == (1, 2)
    (labels_file,) = probs.associatedFiles
    assert labels_file.name == b"labels.txt"
    assert labels_file.type == schema.AssociatedFileType.TENSOR_AXIS_LABELS
    (custom,) = sub.customMetadata
    assert custom.name == b"SEGMENTER_METADATA"
    options = segmenter_schema.ImageSegmenterOptionsT.InitFromPackedBuf(bytearray(bytes(custom.data)), 0)
    assert options.activation == segmenter_schema.Activation.NONE
    with zipfile.ZipFile(exported / "model_int8.tflite") as zf:
        assert zf.read("labels.txt").decode().splitlines() == read_metadata(exported)["classes"]


def test_runtime_refuses_a_file_whose_embedded_labels_disagree(exported, tmp_path):
    folder = tmp_path / "swapped"
    folder.mkdir()
    meta = read_metadata(exported)
    data = (exported / "model_float32.tflite").read_bytes()
    (folder / "model_float32.tflite").write_bytes(data)
    meta["classes"] = list(reversed(meta["classes"]))
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ContractError, match="embedded labels"):
        Segmenter(folder / "model_float32.tflite")
    meta["classes"] = list(reversed(meta["classes"]))
    (folder / "metadata.json").write_text(json.dumps(meta))
    assert Segmenter(folder / "model_float32.tflite").classes == meta["classes"]


def test_a_binary_sigmoid_model_exports_two_class_probabilities(tmp_path):
    """A one-channel sigmoid model (``--sigmoid``) becomes a two-class (1 - p, p) file that the
    clients read; its argmax is the sigmoid's p > 0.5."""
    from kseg import models
    from kseg.export import tflite

    model = models.build("unet", num_classes=1, input_shape=(32, 32, 3), depth=2, base_filters=4)
    data = tflite_metadata.embed(tflite.convert(model, 32, 32, "float32"),
                                 classes=["background", "shape"], name="binary",
                                 description="test", version="1")
    path = tmp_path / "model_float32.tflite"
    path.write_bytes(data)
    assert TFLiteModel(path).output_shape == (1, 32, 32, 2)
    images = _images(2, size=32)
    labels, masks, confidences = _mediapipe_segment(path, images)
    assert labels == ["background", "shape"]
    runtime = TFLiteModel(path)
    for image, mask, conf in zip(images, masks, confidences):
        np.testing.assert_allclose(conf.sum(-1), 1.0, atol=1e-4)
        logit = np.asarray(model(image[None], training=False))[0, ..., 0]
        sure = np.abs(logit) > 1e-3  # away from p = 0.5, where float rounding may go either way
        np.testing.assert_allclose(conf[..., 1], 1 / (1 + np.exp(-logit)), atol=1e-5)
        assert np.array_equal(mask[sure], (logit > 0)[sure].astype(np.int32))
        assert np.array_equal(mask, runtime.labels(image))


TASK_LIBRARY = r"""
import json, sys
import numpy as np
from tflite_support.task import core, processor, vision
path, images = sys.argv[1], np.load(sys.argv[2])
options = vision.ImageSegmenterOptions(base_options=core.BaseOptions(file_name=path),
    segmentation_options=processor.SegmentationOptions(
        output_type=processor.OutputType.CATEGORY_MASK))
segmenter = vision.ImageSegmenter.create_from_options(options)
masks, labels = [], None
for image in images:
    result = segmenter.segment(vision.TensorImage.create_from_array(image))
    seg = result.segmentations[0]
    masks.append(np.asarray(seg.category_mask).reshape(seg.height, seg.width).tolist())
    labels = [c.category_name for c in seg.colored_labels]
print(json.dumps({"labels": labels, "masks": masks}))
"""


def _task_library_python():
    """A Python with tflite-support (it needs numpy<2, so it lives in its own environment):
    $KSEG_TASK_LIBRARY_PYTHON, else this one if it imports tflite_support."""
    python = os.environ.get("KSEG_TASK_LIBRARY_PYTHON") or sys.executable
    if not Path(python).is_file():
        pytest.skip(f"TFLite Task Library: KSEG_TASK_LIBRARY_PYTHON={python} does not exist "
                    "(.ci/run sets up that environment)")
    probe = subprocess.run([python, "-c", "from tflite_support.task import vision"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"TFLite Task Library not usable from {python}: {why} (set "
                    "KSEG_TASK_LIBRARY_PYTHON to a Python with tflite-support==0.4.4 and numpy<2; "
                    "on Linux it needs libusb-1.0)")
    return python


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_task_library_reads_the_file_as_it_is(exported, mode, tmp_path):
    python = _task_library_python()
    images = np.stack(_images())
    np.save(tmp_path / "images.npy", images)
    path = exported / f"model_{mode}.tflite"
    proc = subprocess.run([python, "-c", TASK_LIBRARY, str(path), str(tmp_path / "images.npy")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["labels"] == read_metadata(exported)["classes"]
    runtime = TFLiteModel(path)
    ours = np.stack([runtime.labels(im) for im in images])
    theirs = np.asarray(result["masks"])
    # int8: the Task Library's older int8 kernels break near-ties differently on a few pixels
    assert np.mean(theirs == ours) >= (1.0 if mode == "float32" else 0.999)


EXPORTED = Path(__file__).resolve().parents[1] / "exported"
# every shipped export, those in subfolders (exported/camvid-fast/stride8) too
SHIPPED = sorted(p.parent for p in EXPORTED.rglob("metadata.json"))
SHIPPED_IDS = [f.relative_to(EXPORTED).as_posix() for f in SHIPPED]


def _sample(meta, seed=0):
    h, w = meta["input"]["height"], meta["input"]["width"]
    return [np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)]


def _real_sample(meta, folder):
    """(images, True) of the export's own validation data where it is on this machine (a scene
    the model was made for), else (noise, False)."""
    from kseg.demo import _sample_from_validation
    from kseg.resize import resize_image

    path = _sample_from_validation(meta, folder)
    if path is None:
        return _sample(meta), False
    image = np.asarray(Image.open(path).convert("RGB"))
    return [resize_image(image, (meta["input"]["height"], meta["input"]["width"]))], True


@pytest.mark.parametrize("folder", SHIPPED, ids=SHIPPED_IDS)
def test_shipped_files_work_in_mediapipe(folder):
    meta = read_metadata(folder)
    for path in sorted(folder.glob("model_*.tflite")):
        images = _sample(meta)
        labels, masks, confidences = _mediapipe_segment(path, images)
        assert labels == meta["classes"], path
        model = TFLiteModel(path)
        # an int8-npu file's uint8 probabilities are each within a step of the true value
        step = model.output["quantization"][0] if model.output["dtype"] == np.uint8 else 0.0
        np.testing.assert_allclose(confidences[0].sum(-1), 1.0,
                                   atol=1e-4 + len(meta["classes"]) * step)
        # scores at the network's stride: both upsample them, and float rounding may tip a tie
        agree = 0.995 if meta["output"].get("resolution") == "model" else 0.999
        assert np.mean(masks[0] == model.labels(images[0])) >= agree, path


@pytest.mark.parametrize("folder", SHIPPED, ids=SHIPPED_IDS)
def test_shipped_files_work_in_the_task_library(folder, tmp_path):
    python = _task_library_python()
    meta = read_metadata(folder)
    images, real = _real_sample(meta, folder)
    images = np.stack(images)
    np.save(tmp_path / "images.npy", images)
    for path in sorted(folder.glob("model_*.tflite")):
        proc = subprocess.run([python, "-c", TASK_LIBRARY, str(path), str(tmp_path / "images.npy")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["labels"] == meta["classes"], path
        # the Task Library's mask has the output tensor's size (the caller rescales it)
        scores = TFLiteModel(path)(images[0])
        ours, theirs = np.argmax(scores, axis=-1), np.asarray(result["masks"][0])
        agree = np.mean(theirs == ours)
        if "int8" not in path.name:
            assert agree >= 0.999, (path, agree)
            continue
        # int8 kernels of the Task Library's older TFLite round differently from LiteRT's: on a
        # validation image they tip under 0.3 % of the pixels, on a noise image (no validation
        # data here) a few % (a misread tensor layout would disagree almost everywhere)
        assert agree >= (0.99 if real else 0.95), (path, agree)


def test_upgrade_makes_an_older_export_client_ready_without_its_run(exported, tmp_path):
    """An export from before the client metadata: raw scores, no signature, no labels file."""
    from kseg.export import tflite
    from kseg.models import load_model

    meta = read_metadata(exported)
    model = load_model(exported.parent / meta["model"]["checkpoint"], compile=False)  # RUN/best
    old = tmp_path / "old"
    old.mkdir()
    raw = tflite.make_converter(model, SIZE, SIZE, "float32").convert()
    (old / "model_float32.tflite").write_bytes(raw)
    legacy = {k: v for k, v in meta.items() if k not in ("embedded", "gpu_delegate")}
    legacy["metrics"] = {"float32": dict(meta["metrics"]["float32"])}
    (old / "metadata.json").write_text(json.dumps(legacy))
    assert embedded_labels(old / "model_float32.tflite") is None

    r = invoke("upgrade", old, "--license", "CC0")
    assert r.exit_code == 0, r.output
    assert "upgraded 1 file(s)" in r.output
    path = old / "model_float32.tflite"
    upgraded = read_metadata(old)
    assert upgraded["embedded"]["license"] == "CC0" and embedded_labels(path) == meta["classes"]
    assert upgraded["metrics"]["float32"]["size_bytes"] == path.stat().st_size
    images = _images()
    labels, masks, _ = _mediapipe_segment(path, images)
    assert labels == meta["classes"]
    before = tmp_path / "raw.tflite"
    before.write_bytes(raw)
    for image, mask in zip(images, masks):
        assert np.array_equal(TFLiteModel(before).labels(image), TFLiteModel(path).labels(image))
        assert np.array_equal(mask, TFLiteModel(path).labels(image))
    r = invoke("upgrade", old)
    assert r.exit_code == 0 and "already carries" in r.output
    assert not list(tmp_path.glob(".old.*"))
