"""Files that end at the network's own stride (``--output-resolution model``) and full-integer
files for NPUs (``int8-npu``, compiled with Arm's Vela by ``--npu``): the clients show the same
mask as kseg.runtime, and every model family maps whole onto an Ethos-U."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from kseg.cli import main
from kseg.contract import read_metadata
from kseg.export import forms, tflite
from kseg.runtime import Segmenter, TFLiteModel

from conftest import SHAPES_EXPORT_SIZE as SIZE
from test_mobile_clients import _images, _mediapipe_segment, _task_library_python

ACCELERATOR = "ethos-u65-256"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _vela():
    pytest.importorskip("ethosu.vela", reason="Arm Vela not installed (pip install 'kseg[npu]')")


@pytest.fixture(scope="module")
def fastscnn_run(shapes_export, tmp_path_factory):
    """The shapes run behind ``shapes_export`` (its data, classes, training record) with a small
    Fast-SCNN in place of its U-Net: random weights, enough to compare clients and graphs."""
    from kseg.models import build

    run = tmp_path_factory.mktemp("fastscnn") / "run"
    shutil.copytree(shapes_export.parent / "run", run,
                    ignore=shutil.ignore_patterns("checkpoints", "last.keras", "*.html"))
    config = json.loads((run / "config.json").read_text())
    config.update(model="fastscnn", model_options={"width": 0.25})
    (run / "config.json").write_text(json.dumps(config, indent=2))
    model = build("fastscnn", num_classes=len(config["classes"]), input_shape=(SIZE, SIZE, 3),
                  width=0.25)
    model.save(run / "best.keras")
    return run


@pytest.fixture(scope="module")
def low_res_export(fastscnn_run, tmp_path_factory):
    _vela()
    out = tmp_path_factory.mktemp("low-res") / "fast"
    r = invoke("export", fastscnn_run, "--tflite", "--quantize", "float32,int8-npu",
               "--output-resolution", "model", "--npu", ACCELERATOR, "--representative", 8,
               "--max-miou-drop", 100, "--verify-images", 8, "--out", out)
    assert r.exit_code == 0, r.output
    assert f"on {ACCELERATOR}" in r.output and "0 CPU operators" in r.output
    return out


def test_a_low_resolution_export_says_its_output_size_and_is_full_integer(low_res_export):
    meta = read_metadata(low_res_export)
    side = -(-SIZE // 8)  # ceil(48 / 8): the scores that cover the image
    assert meta["output"] == {"kind": "scores", "resolution": "model", "height": side,
                              "width": side, "stride": 8}
    classes = meta["classes"]
    for mode in ("float32", "int8-npu"):
        model = TFLiteModel(low_res_export / f"model_{mode}.tflite")
        assert model.output_shape == (1, side, side, len(classes))
        assert model.interpreter.get_signature_list() == {
            "serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}}
        assert meta["metrics"][mode]["miou"] >= 0  # scored on val like every file
    npu_file = low_res_export / "model_int8-npu.tflite"
    model = TFLiteModel(npu_file)
    assert model.input["dtype"] == np.uint8 and model.output["dtype"] == np.uint8
    assert model.input["quantization"] == (1.0, 0)  # raw pixels: normalisation is in the graph
    assert tflite.float_operators(npu_file) == []
    record = meta["npu"]["int8-npu"]
    assert record["accelerator"] == ACCELERATOR and record["cpu_operators"] == 0
    assert record["npu_operators"] > 0 and record["estimated_inferences_per_second"] > 0
    assert (low_res_export / record["compiled_file"]).is_file()
    summary, report = (low_res_export / name for name in record["report_files"])
    assert "inferences_per_second" in summary.read_text().splitlines()[0]
    assert "CPU operators = 0" in report.read_text()
    assert set(meta["gpu_delegate"]) == {"float32", "int8-npu"}


def test_mediapipe_shows_what_kseg_runtime_shows_for_low_resolution_files(low_res_export):
    images = _images()
    for mode in ("float32", "int8-npu"):
        path = low_res_export / f"model_{mode}.tflite"
        labels, masks, _ = _mediapipe_segment(path, images)
        assert labels == read_metadata(low_res_export)["classes"]
        seg = Segmenter(path)
        ours = np.stack([seg.segment(im) for im in images])
        assert ours.shape == (len(images), SIZE, SIZE)  # upsampled to the image, not 6x6
        assert np.mean(np.stack(masks) == ours) >= 0.995, mode


def test_the_task_library_returns_the_model_size_mask(low_res_export, tmp_path):
    python = _task_library_python()
    images = np.stack(_images())
    np.save(tmp_path / "images.npy", images)
    script = """
import json, sys
import numpy as np
from tflite_support.task import core, processor, vision
options = vision.ImageSegmenterOptions(base_options=core.BaseOptions(file_name=sys.argv[1]),
    segmentation_options=processor.SegmentationOptions(
        output_type=processor.OutputType.CATEGORY_MASK))
segmenter = vision.ImageSegmenter.create_from_options(options)
out = []
for image in np.load(sys.argv[2]):
    out.append(np.asarray(segmenter.segment(
        vision.TensorImage.create_from_array(image)).segmentations[0].category_mask).tolist())
print(json.dumps(out))
"""
    meta = read_metadata(low_res_export)
    side = meta["output"]["height"]
    for mode in ("float32", "int8-npu"):
        path = low_res_export / f"model_{mode}.tflite"
        proc = subprocess.run([python, "-c", script, str(path), str(tmp_path / "images.npy")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        theirs = np.asarray(json.loads(proc.stdout.strip().splitlines()[-1]))
        assert theirs.size == len(images) * side * side  # the caller rescales it
        model = TFLiteModel(path)
        ours = np.stack([np.argmax(model(im), axis=-1) for im in images])
        assert np.mean(theirs.reshape(ours.shape) == ours) >= 0.99


@pytest.mark.parametrize("name, options", [
    ("fastscnn", {"width": 0.25}),
    ("deeplabv3plus", {"backbone": "mobilenetv2", "width": 0.35, "aspp_channels": 16,
                       "low_level_channels": 8, "decoder_channels": 16}),
    ("unet", {"depth": 3, "base_filters": 4}),
])
def test_every_family_exports_full_integer_and_maps_whole_on_the_npu(name, options, tmp_path):
    _vela()
    from kseg import models
    from kseg.export import npu

    size = 64
    model = models.build(name, num_classes=3, input_shape=(size, size, 3), **options)
    rng = np.random.default_rng(0)
    calib = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(4)]
    path = tmp_path / "model_int8-npu.tflite"
    path.write_bytes(tflite.convert(model, size, size, "int8-npu", representative=calib,
                                    resolution="model"))
    assert tflite.float_operators(path) == []
    record = npu.compile_file(path, ACCELERATOR)
    assert record["cpu_operators"] == 0, record["cpu_operator_list"]
    # the file computes what the Keras model does (random weights: compare scores, not argmax)
    runtime = TFLiteModel(path)
    probs = runtime(calib[1])
    low, _ = forms.at_model_resolution(model)
    ref = np.asarray(low(calib[1][None].astype(np.uint8), training=False))[0]
    ref = np.exp(ref - ref.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    assert np.mean(np.abs(probs - ref)) < 0.1


def test_npu_refuses_without_vela_and_says_what_to_install(fastscnn_run, tmp_path, monkeypatch):
    from kseg.export import npu

    monkeypatch.setattr(npu, "vela_available", lambda: False)
    r = CliRunner().invoke(main, ["export", str(fastscnn_run), "--tflite", "--quantize",
                                  "int8-npu", "--npu", ACCELERATOR, "--out", str(tmp_path / "x")])
    assert r.exit_code != 0
    assert "pip install 'kseg[npu]'" in r.output and not (tmp_path / "x").exists()
    r = CliRunner().invoke(main, ["export", str(fastscnn_run), "--tflite", "--quantize", "int8",
                                  "--npu", ACCELERATOR, "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "add int8-npu to --quantize" in r.output


def test_matmul_resizes_equal_bilinear_resizes_and_the_runtime_upsampling():
    from kseg.models.layers import BilinearUpsample, ResizeToReference
    from kseg.resize import resize_scores

    x = np.random.default_rng(0).normal(size=(1, 3, 5, 4)).astype(np.float32)
    ref = np.zeros((1, 12, 15, 1), np.float32)
    for layer, args in ((BilinearUpsample, (4,)), (ResizeToReference, ())):
        plain = layer(*args)
        matmul = layer.from_config({**plain.get_config(), "matmul": True})
        inputs = x if layer is BilinearUpsample else [x, ref]
        a, b = np.asarray(plain(inputs)), np.asarray(matmul(inputs))
        np.testing.assert_allclose(a, b, atol=1e-5)
        if layer is BilinearUpsample:  # kseg.runtime upsamples scores the same way
            np.testing.assert_allclose(resize_scores(x[0], (12, 20)), a[0], atol=1e-5)
    # configs saved before the option (every existing checkpoint) load with the old behaviour
    assert BilinearUpsample.from_config({"factor": 2}).matmul is False
    assert ResizeToReference.from_config({}).matmul is False


def test_benchmark_shows_the_npu_figures_beside_the_timings(low_res_export):
    from kseg.export.benchmark import benchmark_folder, format_rows

    rows = benchmark_folder(low_res_export, runs=1, warmup=0, threads=(1,), keras=False,
                            log=lambda m: None)
    table = format_rows(rows, low_res_export, 1)
    record = read_metadata(low_res_export)["npu"]["int8-npu"]
    assert "| model_int8-npu.tflite | 1 |" in table  # timed on the CPU like every file
    assert f"| {record['compiled_file']} | {ACCELERATOR} | {record['npu_operators']} / 0 |" in table
    assert "estimate" in table


def test_evaluate_and_predict_read_an_exported_file_as_a_client_shows_it(low_res_export,
                                                                          tmp_path):
    """kseg evaluate / predict take a .tflite file: scores at the network's stride are brought
    to the image as MediaPipe's category mask is, so they show kseg.runtime's mask."""
    from PIL import Image

    from kseg.inference import TFLitePredictor, load

    path = low_res_export / "model_float32.tflite"
    predictor = load(path)
    assert isinstance(predictor, TFLitePredictor) and predictor.input_size == (SIZE, SIZE)
    images = np.stack(_images(3))
    seg = Segmenter(path)
    np.testing.assert_array_equal(predictor.predict_labels(images),
                                  np.stack([seg.segment(im) for im in images]))
    with pytest.raises(ValueError, match="fixed"):
        predictor.rebuilt(input_shape=(None, None, 3))

    scores = tmp_path / "scores.json"
    r = invoke("evaluate", path, "--data", "shapes:64", "--json", scores)
    assert r.exit_code == 0, r.output
    assert str(path) in r.output.splitlines()[0]
    Image.fromarray(images[0]).save(tmp_path / "a.png")
    r = invoke("predict", path, tmp_path / "a.png", "--out", tmp_path / "pred")
    assert r.exit_code == 0, r.output
    labels = np.asarray(Image.open(tmp_path / "pred" / "a_labels.png"))
    np.testing.assert_array_equal(labels, seg.segment(images[0]))
    result = json.loads(scores.read_text())
    assert result["classes"] == predictor.classes and 0 <= result["miou"] <= 1


def test_the_corner_grid_makes_a_corners_aligned_client_follow_the_network():
    """A client that upsamples with corners aligned (MediaPipe's category mask, kseg.runtime) reads
    scores moved by CornerGrid about as the network's half-pixel upsampling draws them at full
    resolution, and far closer than the raw scores."""
    from kseg.models.layers import BilinearUpsample, CornerGrid
    from kseg.resize import corner_grid_matrix, mask_scores

    rng = np.random.default_rng(0)
    stride, (h, w) = 8, (20, 24)
    # smooth scores, as a network's are at its stride: a few slow waves per class
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    x = np.stack([np.sin(rng.uniform(0.3, 0.9) * i + rng.uniform(0.3, 0.9) * j + rng.uniform(0, 6))
                  for _ in range(3)], axis=-1)[None].astype(np.float32)
    network = np.asarray(BilinearUpsample(stride)(x))[0]  # what the model draws at full size
    size = network.shape[:2]
    moved = np.asarray(CornerGrid(size, stride)(x))[0]
    expected = np.einsum("hi,iwc,vw->hvc", corner_grid_matrix(h, size[0], stride), x[0],
                         corner_grid_matrix(w, size[1], stride))
    np.testing.assert_allclose(moved, expected, atol=1e-5)
    raw_error = np.abs(mask_scores(x[0], size) - network).mean()
    grid_error = np.abs(mask_scores(moved, size) - network).mean()
    assert grid_error < raw_error / 2, (grid_error, raw_error)
    raw_agree = np.mean(mask_scores(x[0], size).argmax(-1) == network.argmax(-1))
    grid_agree = np.mean(mask_scores(moved, size).argmax(-1) == network.argmax(-1))
    assert grid_agree > raw_agree + 0.05 and grid_agree > 0.96, (grid_agree, raw_agree)
    # each moved sample is the network's value at the image pixel the client reads it from
    for k in range(h):
        pixel = k * (size[0] - 1) / (h - 1)
        if pixel == int(pixel):
            np.testing.assert_allclose(moved[k, 0], network[int(pixel), 0], atol=1e-5)
    assert CornerGrid.from_config(CornerGrid(size, stride).get_config()).stride == stride
    with pytest.raises(ValueError, match="CornerGrid"):
        CornerGrid((0, 4), stride)
