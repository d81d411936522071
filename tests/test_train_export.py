"""End to end through the CLI: train on shapes -> resume -> evaluate -> predict -> export -> run the
.tflite with ai-edge-litert, in a process where TensorFlow cannot be imported."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import REPO
from kseg.cli import main
from kseg.contract import read_metadata

TRAIN = ["train", "--data", "shapes:48", "--image-size", "32", "32", "--batch-size", "8",
         "-o", "depth=2", "-o", "base_filters=4", "--learning-rate", "0.01"]


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "e2e"
    r = invoke(*TRAIN, "--epochs", 2, "--stop-after", 1, "--out", out)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "state.json").read_text())["epoch"] == 1
    from kseg.models import load_model

    schedule = load_model(out / "last.keras").optimizer._learning_rate  # noqa: SLF001
    assert schedule.total_steps == 2 * 6  # 48 shapes, 20 % held out, batch 8: spans both epochs
    # the same command without --stop-after resumes after epoch 1
    r = invoke(*TRAIN, "--epochs", 2, "--out", out)
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output
    return out


def test_run_folder_contents(run_dir):
    for name in ("config.json", "state.json", "metrics.json", "best.keras", "last.keras"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))
    entries = json.loads((run_dir / "metrics.json").read_text())
    assert [e["epoch"] for e in entries] == [1, 2]
    assert {"loss", "val_loss", "val_miou", "miou"} <= set(entries[0])
    # the newest checkpoint and the one before it (a fallback should the newest be damaged)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch-1.keras",
                                                                          "epoch-2.keras"]
    sessions = json.loads((run_dir / "sessions.json").read_text())  # the first call, then the resume
    assert [s["from_epoch"] for s in sessions] == [0, 1]
    assert {s["backend"] for s in sessions} == {"tensorflow"}
    assert sessions[0]["devices"].startswith("CPU (") and sessions[0]["versions"]["tensorflow"]
    assert any((run_dir / "logs" / "overlays").rglob("events.out.tfevents.*"))
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 + 4  # curves, IoU, confusion, 4 samples
    assert "circle" in page and "val mIoU" in page and "http" not in page.split("<body>")[1]


def test_finished_run_is_not_retrained(run_dir):
    r = invoke(*TRAIN, "--epochs", 2, "--out", run_dir)
    assert r.exit_code == 0 and "nothing to do" in r.output


def test_other_configuration_is_refused(run_dir):
    r = invoke(*TRAIN, "--epochs", 2, "--out", run_dir, "--seed", 5)
    assert r.exit_code == 1
    assert "different configuration" in r.output and "seed" in r.output


def test_evaluate_and_predict(run_dir, tmp_path):
    js = tmp_path / "scores.json"
    r = invoke("evaluate", run_dir, "--json", js)
    assert r.exit_code == 0, r.output
    assert "mIoU" in r.output and "circle" in r.output
    scores = json.loads(js.read_text())
    entries = json.loads((run_dir / "metrics.json").read_text())
    best = max(e["val_miou"] for e in entries)
    assert scores["miou"] == pytest.approx(best, abs=1e-4)  # same data, same checkpoint
    assert np.asarray(scores["confusion_matrix"]).shape == (5, 5)
    assert (tmp_path / "scores_confusion.png").stat().st_size > 1000
    r = invoke("evaluate", run_dir, "--tta", "flip,rotate=-5,5,scales=0.75,1", "--json", js)
    assert r.exit_code == 0, r.output
    tta_scores = json.loads(js.read_text())
    assert tta_scores["tta"] == "flip,rotate=-5,5,scales=0.75,1" and 0 < tta_scores["miou"] <= 1
    assert invoke("evaluate", run_dir, "--tta", "rotate=90").exit_code == 2  # a clear usage error
    # two models: one ensemble (here the same run twice: the mean of equal probabilities)
    r = invoke("evaluate", run_dir, run_dir / "last.keras", "--json", js)
    assert r.exit_code == 0, r.output
    ens = json.loads(js.read_text())
    # the title names both members, in order, as one model scored on the run's validation data
    members = f"{run_dir / 'best.keras'} + {run_dir / 'last.keras'}"
    title = r.output.splitlines()[0]
    assert title.endswith(f"{members} on {ens['data']} ({ens['images']} images)"), title
    last_epoch = entries[-1]["val_miou"]
    assert min(scores["miou"], last_epoch) - 1e-3 <= ens["miou"] <= max(scores["miou"], last_epoch) + 0.05

    from PIL import Image

    from kseg.data import ShapesSource

    image = tmp_path / "img.png"
    Image.fromarray(ShapesSource("val", 1, height=50, width=70).load_numpy(0)[0]).save(image)
    r = invoke("predict", run_dir, image, "--out", tmp_path / "pred")
    assert r.exit_code == 0, r.output
    labels = np.asarray(Image.open(tmp_path / "pred" / "img_labels.png"))
    assert labels.shape == (50, 70) and labels.max() < 5
    assert (tmp_path / "pred" / "img_overlay.png").is_file()


def test_export_verify_and_run_without_tensorflow(run_dir, tmp_path):
    out = tmp_path / "exported" / "shapes"
    r = invoke("export", run_dir, "--tflite", "--out", out)
    assert r.exit_code == 0, r.output
    assert "model_float32.tflite" in r.output
    meta = read_metadata(out)
    assert meta["input"] == {"height": 32, "width": 32, "channels": 3, "dtype": "uint8"}
    assert meta["output"] == {"kind": "scores"} and len(meta["classes"]) == 5
    assert meta["metrics"]["float32"]["agreement"] >= 0.995
    training = meta["model"]["training"]  # what trained it travels with the files
    assert training["run"] == run_dir.name and len(training["sessions"]) == 2
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert not list(out.parent.glob(".shapes.*"))  # no temporary folder left

    # a second export to the same place is refused unless --overwrite
    assert invoke("export", run_dir, "--tflite", "--out", out).exit_code == 1
    assert invoke("export", run_dir, "--tflite", "--out", out, "--overwrite").exit_code == 0

    code = f"""
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
sys.modules["keras"] = None
import numpy as np
from kseg.runtime import Segmenter
seg = Segmenter({str(out / "model_float32.tflite")!r})
labels = seg.segment(np.zeros((45, 61, 3), np.uint8))
assert labels.shape == (45, 61), labels.shape
seg.overlay(np.zeros((45, 61, 3), np.uint8), labels).save({str(tmp_path / "ov.png")!r})
assert not any(m.startswith("tensorflow") for m in sys.modules if sys.modules[m] is not None)
print("ok", labels.max())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")

    # the example app, also without TensorFlow
    app = REPO / "tools" / "segment_image.py"
    picture = tmp_path / "street.png"
    Image.fromarray(np.full((45, 61, 3), 90, np.uint8)).save(picture)
    code = (f"import sys, runpy; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "
            f"sys.argv = ['segment_image.py', {str(out)!r}, {str(picture)!r}, '--out', "
            f"{str(tmp_path / 'app.png')!r}]; runpy.run_path({str(app)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "street.png: 61x45" in proc.stdout
    assert Image.open(tmp_path / "app.png").size == (122, 45)


def test_benchmark_every_file_beside_keras(run_dir, tmp_path):
    out = tmp_path / "bench"
    assert invoke("export", run_dir, "--tflite", "--quantize", "float32,int8", "--representative", 4,
                  "--out", out).exit_code == 0
    doc = tmp_path / "benchmarks.md"
    r = invoke("benchmark", out, "--runs", 3, "--doc", doc, "--run", run_dir)
    assert r.exit_code == 0, r.output
    for row in ("| Keras (.keras checkpoint) | all |", "| model_float32.tflite | 1 |",
                "| model_float32.tflite | 2 |", "| model_int8.tflite | 2 |"):
        assert row in r.output
    text = doc.read_text()
    assert "Command: `kseg" in text and "model_int8.tflite" in text
    r = invoke("benchmark", out, "--runs", 3, "--doc", doc, "--no-keras", "--threads", "1")
    assert doc.read_text().count("## kseg benchmark") == 2  # appended, not replaced
    assert invoke("benchmark", tmp_path, "--doc", "").exit_code == 1  # no metadata.json there
    # by default the table is only printed: nothing is written where the user stands
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = invoke("benchmark", out, "--runs", 2, "--no-keras", "--threads", "1")
    finally:
        os.chdir(here)
    assert r.exit_code == 0 and "model_int8.tflite" in r.output
    assert not (tmp_path / "docs").exists() and "appended" not in r.output



def test_failed_verification_leaves_nothing(run_dir, tmp_path):
    from kseg.export import ExportError, export_run

    out = tmp_path / "never"
    with pytest.raises(ExportError, match="verification failed"):
        export_run(run_dir, out, min_agreement=1.01, max_images=4, log=lambda *_: None)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_savedmodel_serves_any_batch(run_dir, tmp_path):
    import tensorflow as tf

    from kseg.export import savedmodel
    from kseg.models import load_model

    model = load_model(run_dir / "best.keras", compile=False)
    savedmodel.save(model, tmp_path / "sm", 32, 32)
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    for n in (1, 3):
        x = np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        got = serve(images=tf.constant(x))["scores"].numpy()
        np.testing.assert_allclose(got, model.predict_on_batch(x), atol=1e-4)


def test_losses_and_class_weights_from_the_cli(tmp_path):
    out = tmp_path / "focal"
    r = invoke(*TRAIN, "--epochs", 1, "--out", out, "--loss", "focal+dice", "--loss-weights", "1,0.5",
               "--focal-gamma", 1, "--class-weights", "median-frequency")
    assert r.exit_code == 0, r.output
    assert "class weights: background" in r.output
    from kseg.models import load_model

    loss = load_model(out / "last.keras").loss
    assert loss.weights == [1.0, 0.5] and loss.losses[0].gamma == 1.0
    assert len(loss.losses[0].alpha) == 5  # class weights became focal's alpha


def test_binary_sigmoid_model_trains_exports_and_runs(tmp_path):
    from conftest import make_folder

    data = make_folder(tmp_path / "binary", n=10, size=(24, 16))
    out = tmp_path / "run"
    r = invoke("train", "--data", data, "--image-size", 16, 24, "--batch-size", 4, "-o", "depth=2",
               "-o", "base_filters=4", "--sigmoid", "--loss", "dice", "--epochs", 1, "--out", out)
    assert r.exit_code == 0, r.output
    r = invoke("export", out, "--tflite", "--out", tmp_path / "exp")
    assert r.exit_code == 0, r.output
    from kseg.runtime import Segmenter

    seg = Segmenter(tmp_path / "exp")
    assert seg.model.output_shape == (1, 16, 24, 2)  # (1 - p, p): what mobile clients read
    assert set(np.unique(seg.segment(np.zeros((30, 40, 3), np.uint8)))) <= {0, 1}


def test_deeplab_trained_at_os16_is_evaluated_and_exported_at_os8(tmp_path):
    out = tmp_path / "dl"
    r = invoke("train", "--data", "shapes:16", "--image-size", 32, 32, "--batch-size", 8,
               "--model", "deeplabv3plus", "--backbone", "mobilenetv2", "--output-stride", 16,
               "-o", "width=0.35", "-o", "aspp_channels=8", "-o", "low_level_channels=8",
               "-o", "decoder_channels=8", "--epochs", 1, "--out", out)
    assert r.exit_code == 0, r.output
    r = invoke("evaluate", out, "--output-stride", 8)
    assert r.exit_code == 0, r.output
    r = invoke("export", out, "--tflite", "--output-stride", 8, "--out", tmp_path / "exp")
    assert r.exit_code == 0, r.output
    meta = read_metadata(tmp_path / "exp")
    assert meta["model"]["options"]["output_stride"] == 8
    r = invoke("evaluate", out, "--output-stride", 12)
    assert r.exit_code != 0


def test_every_tflite_mode_and_labels_output(run_dir, tmp_path):
    out = tmp_path / "all"
    r = invoke("export", run_dir, "--tflite", "--quantize", "float32,float16,dynamic,int8",
               "--representative", 16, "--max-miou-drop", 100, "--out", out)
    assert r.exit_code == 0, r.output
    meta = read_metadata(out)
    for mode in ("float32", "float16", "dynamic", "int8"):
        assert (out / f"model_{mode}.tflite").is_file()
        assert "miou_drop_points" in meta["metrics"][mode]
        assert f"model_{mode}.tflite" in r.output
    f32 = (out / "model_float32.tflite").stat().st_size
    assert (out / "model_int8.tflite").stat().st_size < f32  # a tiny model: headers dominate
    # the same run exported again gives the same bytes: a re-export commits nothing new
    again = tmp_path / "again"
    r = invoke("export", run_dir, "--tflite", "--quantize", "float32,int8", "--representative", 16,
               "--max-miou-drop", 100, "--name", "all", "--out", again)
    assert r.exit_code == 0, r.output
    for mode in ("float32", "int8"):
        assert (again / f"model_{mode}.tflite").read_bytes() == (out / f"model_{mode}.tflite").read_bytes()

    from kseg.runtime import Segmenter

    labels_out = tmp_path / "labels"
    # no mobile client reads [1, H, W] labels: refused unless asked for kseg's runtime only
    r = invoke("export", run_dir, "--tflite", "--output", "labels", "--out", labels_out)
    assert r.exit_code == 1 and "--kseg-runtime-only" in r.output and "probabilities" in r.output
    assert not labels_out.exists()
    r = invoke("export", run_dir, "--tflite", "--quantize", "float32,int8", "--output", "labels",
               "--kseg-runtime-only", "--representative", 8, "--max-miou-drop", 100,
               "--out", labels_out)
    assert r.exit_code == 0, r.output
    assert "kseg.runtime only" in r.output
    assert "embedded" not in read_metadata(labels_out)
    assert read_metadata(labels_out)["output"] == {"kind": "labels"}
    seg = Segmenter(labels_out / "model_int8.tflite")
    assert seg.model.output_shape == (1, 32, 32)
    assert seg.segment(np.zeros((40, 50, 3), np.uint8)).shape == (40, 50)
    assert read_metadata(labels_out)["metrics"]["float32"]["agreement"] >= 0.995


def test_quantized_file_over_the_miou_budget_fails_the_export(run_dir, tmp_path):
    out = tmp_path / "strict"
    r = invoke("export", run_dir, "--tflite", "--quantize", "int8", "--representative", 4,
               "--max-miou-drop", -1, "--out", out)
    assert r.exit_code == 1
    assert "loses" in r.output and "mIoU points" in r.output
    assert "int8 rescue" in r.output and "kept in float did not rescue it" in r.output
    assert not out.exists() and not list(tmp_path.glob(".strict*"))
    r = invoke("export", run_dir, "--tflite", "--quantize", "int8", "--representative", 4,
               "--max-miou-drop", -1, "--no-rescue", "--out", out)
    assert r.exit_code == 1 and "int8 rescue" not in r.output and not out.exists()


def test_mixed_precision_run_is_evaluated_and_exported_in_float32(tmp_path):
    out = tmp_path / "mp"
    r = invoke(*TRAIN, "--epochs", 1, "--mixed-precision", "--schedule", "poly", "--optimizer",
               "sgd", "--learning-rate", 0.05, "--out", out)
    assert r.exit_code == 0, r.output
    assert "mixed_bfloat16" in r.output
    from kseg.models import is_mixed_precision, load_model

    assert is_mixed_precision(load_model(out / "last.keras", compile=False))
    r = invoke("export", out, "--tflite", "--out", tmp_path / "exp")
    assert r.exit_code == 0, r.output
    meta = read_metadata(tmp_path / "exp")
    assert meta["metrics"]["float32"]["agreement"] >= 0.99  # bf16 Keras vs float32 file


def test_trained_on_crops_validated_and_exported_at_the_full_size(tmp_path):
    out = tmp_path / "crops"
    r = invoke(*TRAIN, "--crop", 24, 16, "--repeat", 2, "--epochs", 1, "--out", out)
    assert r.exit_code == 0, r.output
    assert "random 24x16 crops" in r.output
    assert "12 steps per epoch" in r.output  # 48 training shapes, twice, batch 8
    from kseg.models import load_model

    assert tuple(load_model(out / "best.keras").input.shape[1:3]) == (None, None)
    r = invoke("export", out, "--tflite", "--out", tmp_path / "exp")
    assert r.exit_code == 0, r.output
    from kseg.runtime import Segmenter

    model = Segmenter(tmp_path / "exp").model
    assert (model.height, model.width) == (32, 32)
    for bad in (["--crop", 40, 16], ["--repeat", 0]):
        r = invoke(*TRAIN, *bad, "--epochs", 1, "--out", tmp_path / "bad")
        assert r.exit_code != 0 and not (tmp_path / "bad").exists()


def test_training_record_follows_init_from(tmp_path):
    from kseg.export.exporter import training_record
    from kseg.train.rundir import RunDir

    first, second = RunDir(tmp_path / "gpu"), RunDir(tmp_path / "gpu2")
    first.prepare({"init_from": None})
    first.add_session({"backend": "jax", "devices": "1 x NVIDIA H200", "from_epoch": 0})
    second.prepare({"init_from": str(tmp_path / "gpu" / "best.keras")})  # a .keras file in a run
    second.add_session({"backend": "jax", "devices": "1 x NVIDIA H200", "from_epoch": 0})
    second.add_session({"backend": "tensorflow", "devices": "CPU (2 cores)", "from_epoch": 3})
    record = training_record(second)
    assert [s["backend"] for s in record["sessions"]] == ["jax", "tensorflow"]
    assert record["init_from"]["run"] == "gpu"  # names, not this machine's paths
    assert record["init_from"]["sessions"][0]["devices"] == "1 x NVIDIA H200"
    assert "init_from" not in record["init_from"]
    third = RunDir(tmp_path / "elsewhere")
    third.prepare({"init_from": "/gone/run"})  # a source no longer here is named, not followed
    assert training_record(third)["init_from"] == {"run": "run"}
    fourth = RunDir(tmp_path / "from-a-checkpoint")
    fourth.prepare({"init_from": str(tmp_path / "gpu" / "checkpoints" / "epoch-3.keras")})
    assert training_record(fourth)["init_from"]["run"] == "gpu"


def test_training_record_finds_a_relative_init_from_above_the_run(tmp_path, monkeypatch):
    from kseg.export.exporter import training_record
    from kseg.train.rundir import RunDir

    RunDir(tmp_path / "runs" / "gpu").prepare({"init_from": None})
    RunDir(tmp_path / "runs" / "gpu").add_session({"backend": "jax", "from_epoch": 0})
    RunDir(tmp_path / "runs" / "cpu").prepare({"init_from": "runs/gpu"})  # typed in tmp_path
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # exported from another folder
    record = training_record(RunDir(tmp_path / "runs" / "cpu"))
    assert record["init_from"]["run"] == "gpu"
    assert record["init_from"]["sessions"] == [{"backend": "jax", "from_epoch": 0}]


def test_one_answer_for_one_image_in_predict_evaluate_and_the_runtime(run_dir, tmp_path):
    """kseg predict segments as the exported file does (at the model's size, labels brought back),
    so for an image of another size the two agree; --native segments at the photo's size."""
    from PIL import Image

    from kseg.data import ShapesSource
    from kseg.runtime import Segmenter

    out = tmp_path / "exp"
    assert invoke("export", run_dir, "--tflite", "--out", out).exit_code == 0
    seg = Segmenter(out / "model_float32.tflite")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    photo = ShapesSource("val", 1, height=56, width=80, seed=5).load_numpy(0)[0]
    Image.fromarray(photo).save(tmp_path / "a" / "x.png")
    Image.fromarray(photo[::-1]).save(tmp_path / "b" / "x.jpg", quality=100)
    r = invoke("predict", run_dir, tmp_path / "a" / "x.png", tmp_path / "b" / "x.jpg",
               "--out", tmp_path / "pred")
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in (tmp_path / "pred").glob("*_labels.png"))
    assert len(written) == 2, written  # the second photo does not overwrite the first
    ours = np.asarray(Image.open(tmp_path / "pred" / "a_x_png_labels.png"))
    runtime = seg.segment(photo)
    assert ours.shape == runtime.shape == (56, 80)
    assert np.mean(ours == runtime) >= 0.99
    r = invoke("predict", run_dir, tmp_path / "a" / "x.png", "--native", "--out", tmp_path / "nat")
    assert r.exit_code == 0, r.output
    assert np.asarray(Image.open(tmp_path / "nat" / "x_labels.png")).shape == (56, 80)
    # a 12-megapixel photo: segmented at the model's size, labels at the photo's
    big = tmp_path / "big.jpg"
    Image.fromarray(np.full((3000, 4000, 3), 90, np.uint8)).save(big)
    r = invoke("predict", run_dir, big, "--out", tmp_path / "big")
    assert r.exit_code == 0, r.output
    assert np.asarray(Image.open(tmp_path / "big" / "big_labels.png")).shape == (3000, 4000)
    # float images are refused, not silently turned black
    with pytest.raises(ValueError, match="uint8"):
        seg.segment(photo.astype(np.float32) / 255)


def test_evaluate_scores_at_the_labels_resolution(run_dir, tmp_path):
    from PIL import Image

    from kseg.data import ShapesSource

    root = tmp_path / "big"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(ShapesSource("val", 1).classes) + "\n")
    pixels = 0
    for i in range(3):  # 2x the model's 32x32 training size
        image, label = ShapesSource("val", 3, height=64, width=64).load_numpy(i)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(label).save(root / "labels" / f"{i}.png")
        pixels += int(np.sum(label != 255))
    js = tmp_path / "s.json"
    r = invoke("evaluate", run_dir, "--data", root, "--split", "train", "--val-fraction", 0,
               "--json", js)
    assert r.exit_code == 0, r.output
    result = json.loads(js.read_text())
    assert int(np.sum(result["confusion_matrix"])) == pixels  # every label pixel, at 64x64
    assert "label's own resolution" in result["protocol"]


def test_mixed_float16_resume_follows_a_raised_epoch_count(tmp_path, monkeypatch):
    """Under mixed float16 the optimizer is a LossScaleOptimizer: the rebuilt schedule must go to
    the optimizer inside it, which is the one that steps."""
    import keras

    from kseg.models import load_model
    from kseg.train import trainer

    monkeypatch.setattr(trainer, "precision_policy", lambda config: "mixed_float16"
                        if config.mixed_precision else None)
    out = tmp_path / "mp16"
    try:
        small = ["train", "--data", "shapes:16", "--image-size", 16, 16, "--batch-size", 4,
                 "-o", "depth=1", "-o", "base_filters=2", "--mixed-precision", "--schedule", "poly"]
        r = invoke(*small, "--epochs", 1, "--out", out)
        assert r.exit_code == 0, r.output
        r = invoke(*small, "--epochs", 3, "--out", out)
        assert r.exit_code == 0, r.output
    finally:
        keras.mixed_precision.set_global_policy("float32")
    optimizer = load_model(out / "last.keras").optimizer
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    assert optimizer._learning_rate.total_steps == 3 * 4  # noqa: SLF001  (16 images, batch 4)


def test_a_config_json_with_an_unknown_key_is_refused_by_name(run_dir, tmp_path):
    import shutil

    from kseg.train.config import TrainConfig

    with pytest.raises(ValueError, match="unknown key.*tile_size"):
        TrainConfig.from_json({**TrainConfig().to_json(), "tile_size": 64})
    copy = tmp_path / "edited"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["tile_size"] = 64
    (copy / "config.json").write_text(json.dumps(config))
    for command in (("evaluate", copy), ("export", copy, "--out", tmp_path / "x")):
        r = invoke(*command)
        assert r.exit_code == 1 and "tile_size" in r.output and "config.json" in r.output, command


def test_export_cleans_up_only_partial_folders_of_dead_exports(run_dir, tmp_path):
    import os

    live = tmp_path / f".exp.{os.getppid()}-0.partial"  # another export still at work
    dead = tmp_path / ".exp.999999999-0.partial"  # left by a killed one
    live.mkdir()
    dead.mkdir()
    assert invoke("export", run_dir, "--out", tmp_path / "exp").exit_code == 0
    assert live.is_dir() and not dead.exists()


def test_export_of_the_last_epochs_checkpoint(run_dir, tmp_path):
    """--checkpoint last: a final model trained on train+val has no val to select on."""
    r = invoke("export", run_dir, "--checkpoint", "last", "--out", tmp_path / "last")
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "last" / "metadata.json").read_text())
    assert meta["model"]["checkpoint"] == f"{run_dir.name}/last.keras"
    r = invoke("export", run_dir, "--out", tmp_path / "best")
    assert json.loads((tmp_path / "best" / "metadata.json").read_text())["model"][
        "checkpoint"] == f"{run_dir.name}/best.keras"
