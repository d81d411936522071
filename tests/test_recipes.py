"""The pieces of the trained-model recipes (tools/train_camvid.sh, tools/train_isbi.sh): epoch
budgeting, starting from another model's weights, packing a run, loader worker processes."""

import json
import os
import time
import subprocess

import keras
import numpy as np
import pytest

from conftest import REPO, make_folder
from kseg import models
from kseg.data import open_source
from kseg.data.augment import Augmentation
from kseg.data.numpy_pipeline import TrainBatches
from kseg.train.trainer import init_weights


def test_budget_leaves_out_the_tracing_epoch_and_keeps_room_to_resume():
    from kseg.train.budget import fit_epochs as fit
    metrics = [{"seconds": 300.0}, {"seconds": 10.0}, {"seconds": 12.0}]
    # 1000 s budget, 330 s spent: (1000 - 330 - 2 * 12 - 60) // 12 = 48 more epochs
    assert fit(metrics, 1000, 330, 3) == (51, 12.0)
    assert fit(metrics, 400, 330, 3) == (3, 12.0)  # over budget: stop after the probe
    # a GPU run keeps more back for compiling again: (1000 - 330 - 24 - 120) // 12 = 43 more
    assert fit(metrics, 1000, 330, 3, retrace_s=120) == (46, 12.0)
    with pytest.raises(ValueError, match="probe epochs"):
        fit(metrics[:2], 1000, 0, 3)


def test_durations_for_the_time_budget():
    from kseg.train.budget import parse_duration

    assert parse_duration("5400") == 5400 and parse_duration("90m") == 5400
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45
    for bad in ("2 days", "h", "1x", ""):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_time_budget_fits_the_epoch_count_and_keeps_it_on_resume(tmp_path, monkeypatch):
    """A tiny budget: the 3-epoch probe is all the run gets; a large one: capped at --epochs.
    A resumed call keeps the count chosen first."""
    from click.testing import CliRunner

    from kseg.cli import main

    def run(out, budget, epochs, *extra):
        return CliRunner().invoke(main, [
            "train", "--data", "shapes:16", "--image-size", "16", "16", "-o", "depth=1",
            "-o", "base_filters=2", "--batch-size", "4", "--epochs", str(epochs),
            "--schedule", "poly", "--time-budget", budget, "--out", str(out), *extra])

    tiny = tmp_path / "tiny"
    r = run(tiny, "1s", 50)
    assert r.exit_code == 0, r.output
    assert json.loads((tiny / "budget.json").read_text())["epochs"] == 3
    assert len(json.loads((tiny / "metrics.json").read_text())) == 3
    r = run(tiny, "1s", 50)  # resumed: already finished with the count chosen first
    assert r.exit_code == 0 and "already finished" in r.output
    roomy = tmp_path / "roomy"
    r = run(roomy, "10h", 4)
    assert r.exit_code == 0, r.output
    assert json.loads((roomy / "budget.json").read_text())["epochs"] == 4  # capped at --epochs
    # a budget that fits 5 of 8 epochs: the schedule is rebuilt to end at epoch 5
    from kseg.models import load_model
    from kseg.train import budget

    monkeypatch.setattr(budget, "fit_epochs", lambda *a, **k: (5, 1.0))
    fitted = tmp_path / "fitted"
    r = run(fitted, "1h", 8)
    assert r.exit_code == 0, r.output
    assert len(json.loads((fitted / "metrics.json").read_text())) == 5
    schedule = load_model(fitted / "last.keras").optimizer._learning_rate  # noqa: SLF001
    assert schedule.total_steps == 5 * 4  # 16 images, batch 4: 4 steps per epoch
    assert CliRunner().invoke(main, ["train", "--time-budget", "soon", "--out",
                                     str(tmp_path / "x")]).exit_code == 2
    # a call stopped (or killed) inside the probe: the next one counts the epochs already spent
    seen = []
    monkeypatch.setattr(budget, "fit_epochs", lambda m, b, elapsed, *a: seen.append(elapsed) or (4, 1.0))
    cut = tmp_path / "cut"
    r = run(cut, "1h", 8, "--stop-after", "1")
    assert r.exit_code == 0 and not seen  # ended inside the probe: nothing fitted yet
    first_epoch = json.loads((cut / "metrics.json").read_text())[0]["seconds"]
    t0 = time.time()
    r = run(cut, "1h", 8)
    assert r.exit_code == 0, r.output
    probe = [e["seconds"] for e in json.loads((cut / "metrics.json").read_text())[:3]]
    assert len(seen) == 1 and seen[0] >= sum(probe)  # epoch 1 (the first call) included
    assert seen[0] - first_epoch <= time.time() - t0


def _FixedModel(scores, classes=("a", "b", "c"), size=None, name="m"):
    """A predictor that answers every batch with the probabilities of fixed ``scores``."""
    from kseg.inference import Predictor
    from kseg.tta import probabilities

    class Fixed(Predictor):
        def predict_proba(self, images):
            return probabilities(scores)

    fixed = Fixed()
    fixed.classes, fixed.input_size, fixed.name = list(classes), size, name
    return fixed


def test_an_ensemble_averages_class_probabilities_softmax_and_binary_sigmoid():
    from kseg.inference import Ensemble
    from kseg.tta import probabilities

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 2, 5, 7, 3)) * 3
    assert np.isfinite(Ensemble([_FixedModel(a * 100), _FixedModel(b)]).predict_proba(None)).all()
    ens = Ensemble([_FixedModel(a), _FixedModel(b)])
    want = (probabilities(a, np.float64) + probabilities(b, np.float64)) / 2
    np.testing.assert_allclose(ens.predict_proba(None), want, atol=1e-5)
    np.testing.assert_array_equal(ens.predict_labels(np.zeros((2, 5, 7, 3), np.uint8)), want.argmax(-1))
    # a binary model's one sigmoid channel counts as (1 - p, p)
    logit = rng.normal(size=(2, 5, 7, 1))
    two = np.concatenate([np.zeros_like(logit), logit], axis=-1)  # softmax of (0, z) = sigmoid
    binary = Ensemble([_FixedModel(logit, ("bg", "fg")), _FixedModel(two, ("bg", "fg"))])
    np.testing.assert_allclose(binary.predict_proba(None)[..., 1],
                               1 / (1 + np.exp(-logit[..., 0])), atol=1e-5)
    with pytest.raises(ValueError, match="not one ensemble"):
        Ensemble([_FixedModel(a), _FixedModel(b, ("a", "b", "d"))])
    with pytest.raises(ValueError, match="different input sizes"):
        Ensemble([_FixedModel(a, size=(8, 8)), _FixedModel(b, size=(16, 16))])


def test_recipe_scripts_parse_and_reject_an_unknown_preset(tmp_path):
    for script in ("train_camvid.sh", "train_isbi.sh", "train_camvid_fast.sh"):
        subprocess.run(["bash", "-n", str(REPO / "tools" / script)], check=True)
    bad = subprocess.run(["bash", str(REPO / "tools" / "train_camvid.sh"), "d", "r", "tpu"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown preset tpu" in bad.stderr


def test_the_camvid_fast_recipe_calls_kseg_train_with_files_that_load(tmp_path):
    """The shipped recipe's own arguments (KSEG=echo prints them): its augmentation file loads,
    no teacher unless asked, and a fixed EPOCHS replaces the budget."""
    env = {**os.environ, "KSEG": "echo", "EPOCHS": "200"}
    out = subprocess.run(["bash", "tools/train_camvid_fast.sh", "camvid:d:train+val", str(tmp_path / "r")],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "train" and out[out.index("--data") + 1] == "camvid:d:train+val"
    augment = out[out.index("--augment") + 1]
    assert (REPO / augment).is_file()
    pipe = Augmentation(preset=str(REPO / augment))._albumentations()
    names = [type(t).__name__ for t in pipe.transforms]
    assert "HorizontalFlip" in names  # a file mirrors itself (presets mirror outside albumentations)
    affine = pipe.transforms[names.index("Affine")]
    assert affine.scale == {"x": (1.0, 1.0), "y": (1.0, 1.0)}  # strong, without its 0.5-2 scale
    assert "--teacher" not in out and "--time-budget" not in out and out[out.index("--epochs") + 1] == "200"
    env.update(TEACHER="exported/camvid/model_float32.tflite", AUGMENT="strong")
    del env["EPOCHS"]
    out = subprocess.run(["bash", "tools/train_camvid_fast.sh"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[out.index("--teacher") + 1] == "exported/camvid/model_float32.tflite"
    assert out[out.index("--augment") + 1] == "strong" and "--time-budget" in out


def _unet(num_classes):
    return models.build("unet", num_classes=num_classes, input_shape=(32, 32, 3), base_filters=4,
                        depth=2)


def test_init_from_copies_matching_layers_and_keeps_a_new_head(tmp_path):
    donor = _unet(3)
    for w in donor.weights:
        w.assign(np.random.default_rng(1).normal(size=w.shape).astype("float32"))
    donor.save(tmp_path / "donor.keras")
    model = _unet(5)  # another class count: the head cannot be copied
    head = model.layers[-1] if model.layers[-1].weights else model.layers[-2]
    fresh_head = [w.numpy().copy() for w in head.weights]
    message = init_weights(model, tmp_path / "donor.keras")
    assert "layers copied" in message and "kept fresh" in message
    copied = [layer for layer in model.layers if layer.weights and layer.name != head.name]
    for layer in copied:
        for a, b in zip(layer.get_weights(), donor.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(head.get_weights(), fresh_head):
        np.testing.assert_array_equal(a, b)
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(2, 1, name="other")])
    with pytest.raises(ValueError, match="no layer of it matches"):
        init_weights(other, tmp_path / "donor.keras")


def _has_optimizer_state(path):
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
        return "optimizer" in h5 and len(h5["optimizer"].get("vars", {})) > 0


def test_pack_run_drops_the_optimizer_and_keeps_the_weights(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = _unet(2)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy")
    model.train_on_batch(np.zeros((2, 32, 32, 3), "float32"), np.zeros((2, 32, 32), "int32"))
    model.save(run / "best.keras")
    for name in ("config.json", "state.json", "metrics.json"):
        (run / name).write_text("{}")
    from kseg.train.runs import pack

    packed = pack(run, tmp_path / "packed")
    assert _has_optimizer_state(run / "best.keras") and not _has_optimizer_state(packed)
    assert sorted(p.name for p in packed.parent.iterdir()) == [
        "best.keras", "config.json", "metrics.json", "state.json"]
    again = keras.models.load_model(packed, compile=False)
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loader_processes_give_the_thread_batches(tmp_path):
    root = make_folder(tmp_path / "data", n=8, size=(48, 40))
    source = open_source(str(root), "train", image_size=(32, 40), val_fraction=0.0)
    aug = Augmentation("light")
    threads = TrainBatches(source, (32, 40), 2, augment=aug, seed=5, workers=2, cache=True,
                           processes=0)
    procs = TrainBatches(source, (32, 40), 2, augment=aug, seed=5, workers=2, cache=True,
                         processes=2)
    try:
        assert threads.processes == 0 and procs.processes == 2
        for epoch in range(2):
            for i in range(len(threads)):
                for a, b in zip(threads[i], procs[i]):
                    np.testing.assert_array_equal(a, b)
            threads.on_epoch_end()
            procs.on_epoch_end()
    finally:
        procs.close()
        threads.close()


def test_unpicklable_sources_fall_back_to_threads(tmp_path):
    import threading

    root = make_folder(tmp_path / "data", n=4, size=(24, 20))
    source = open_source(str(root), "train", image_size=(16, 16), val_fraction=0.0)
    source.lock = threading.Lock()  # as COCO instance sources hold
    batches = TrainBatches(source, (16, 16), 2, processes=2)
    assert batches.processes == 0 and batches[0][0].shape == (2, 16, 16, 3)


def test_orientation_check_finds_a_label_offset_and_a_frame_bound_model():
    from kseg import orientation as tool

    rng = np.random.default_rng(0)
    images = rng.integers(150, 200, size=(3, 32, 32)).astype(np.uint8)
    labels = np.ones((3, 32, 32), np.int64)
    for row in (5, 14, 23):  # dark 3x3 blocks ("membranes"), class 0
        for col in (4, 13, 22):
            images[:, row:row + 3, col:col + 3] = 40
            labels[:, row + 1:row + 4, col:col + 3] = 0  # annotated one row too low
    table = tool.alignment_table(images, labels, 0, 2)
    assert table.shape == (5, 5)
    assert np.unravel_index(np.argmin(table), table.shape) == (1, 2)  # rolled up by one row: dy -1
    dy, dx = tool.subpixel_peak(table)
    assert abs(dy + 1) < 0.5 and abs(dx) < 0.01
    yy, xx = np.mgrid[-2:3, -2:3]
    off_centre = 10 - (yy - 0.3) ** 2 - 2 * (xx + 0.2) ** 2  # a paraboloid peaking at (+0.3, -0.2)
    np.testing.assert_allclose(tool.subpixel_peak(off_centre), (0.3, -0.2))
    np.testing.assert_allclose(tool.subpixel_peak(-off_centre), (0.3, -0.2))  # strongest |value|
    ignored = labels.copy()
    ignored[:, 14:20] = 255  # the middle band of blocks: ignored, neither inside nor outside
    kept = np.concatenate([labels[:, :14], labels[:, 20:]], axis=1)
    kept_images = np.concatenate([images[:, :14], images[:, 20:]], axis=1)
    with_ignore = tool.alignment_table(images, ignored, 0, 0, ignore_index=255)
    assert with_ignore[0, 0] != tool.alignment_table(images, ignored, 0, 0)[0, 0]
    np.testing.assert_allclose(with_ignore, tool.alignment_table(kept_images, kept, 0, 0))

    rgb = np.repeat(images[..., None], 3, axis=-1)
    truth = (images > 100).astype(np.int64)  # the bands, correctly placed

    def by_intensity(x):  # turns with the image: the same score under every symmetry
        return np.stack([100.0 - x[..., 0], x[..., 0] - 100.0], axis=-1)

    def always_top_rows(x):  # frame-bound: class 0 in the top 8 rows of whatever it is shown
        out = np.zeros(x.shape[:3] + (2,))
        out[:, :8, :, 0] = 1.0
        out[:, 8:, :, 1] = 1.0
        return out

    fair = tool.symmetry_scores(tool.symmetry_labels(by_intensity, rgb), truth, 2, 255)
    assert len(fair) == 8 and all(s["pixel_accuracy"] == 1.0 for s in fair.values())
    bound = tool.symmetry_scores(tool.symmetry_labels(always_top_rows, rgb), truth, 2, 255)
    assert len({round(s["pixel_accuracy"], 6) for s in bound.values()}) > 1

    lab = np.ones((1, 8, 32), np.int64)
    lab[..., :10] = 0  # one boundary, between columns 9 and 10
    lab[:, :, 26] = 255  # ignored, beside a wrong column: not a boundary
    pred = lab.copy()
    pred[..., 10] = 0  # wrong next to the boundary
    pred[..., 25] = 0  # wrong far from it
    shares, rate = tool.boundary_error_shares(lab, pred, ignore_index=255)
    assert shares == {1: 0.5, 2: 0.5, 3: 0.5, 5: 0.5}
    assert rate == 16 / (8 * 31)
    one_class = np.ones((1, 8, 8), np.int64)  # no boundary anywhere: nothing is near one
    assert tool.boundary_error_shares(one_class, 1 - one_class)[0] == {1: 0.0, 2: 0.0, 3: 0.0, 5: 0.0}


def test_compare_runs_summarises_best_tail_and_whole_curve(tmp_path):
    from click.testing import CliRunner

    from kseg.cli import main
    from kseg.train.runs import curve_summary

    entries = [{"epoch": i + 1, "val_miou": m, "val_pixel_accuracy": a, "pixel_accuracy": t}
               for i, (m, a, t) in enumerate([(0.5, 0.8, 0.7), (0.9, 0.95, 0.8), (0.6, 0.85, 0.9),
                                              (0.7, 0.9, 1.0)])]
    s = curve_summary(entries, last=2)
    assert s["best_epoch"] == 2 and s["best"] == (0.95, 0.9)
    assert s["last"] == pytest.approx((0.875, 0.65)) and s["train_last"] == pytest.approx(0.95)
    assert s["all"] == pytest.approx((0.875, 0.675)) and s["epochs"] == 4
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(entries))
    r = CliRunner().invoke(main, ["compare", str(run), "--last", "2"])
    assert r.exit_code == 0 and "0.9500 / 0.9000 0.8750 / 0.6500" in r.output
    r = CliRunner().invoke(main, ["compare", str(run), "--last", "2", "--upto", "1"])  # epoch 1
    assert "0.8000 / 0.5000 0.8000 / 0.5000 0.8000 / 0.5000    0.7000" in r.output
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "metrics.json" in r.output
    assert CliRunner().invoke(main, ["compare", str(run), "--last", "0"]).exit_code == 1

def test_kseg_orientation_reports_alignment_and_symmetries(tmp_path):
    from click.testing import CliRunner

    from kseg.cli import main

    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--data", "shapes:16", "--image-size", "16", "16",
                                  "-o", "depth=1", "-o", "base_filters=2", "--batch-size", "4",
                                  "--epochs", "1", "--out", str(run)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["orientation", str(run), "--class", "circle", "--shift", "1"])
    assert r.exit_code == 0, r.output
    assert "strongest at dy" in r.output and "under the 8 symmetries" in r.output
    assert r.output.count("\n      no ") + r.output.count("\n     yes ") == 8
    r = CliRunner().invoke(main, ["orientation", str(run), "--class", "unicorn"])
    assert r.exit_code == 1 and "unicorn" in r.output
