"""Distillation: `kseg train --teacher` adds a pixel-wise KL term to a frozen teacher's
probabilities on the same augmented batch (kseg.losses.Distillation, kseg.data.teacher)."""

import json

import numpy as np
import pytest


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def test_distillation_loss_is_the_base_plus_the_tempered_kl_over_valid_pixels():
    import keras

    from kseg.data.teacher import pack
    from kseg.losses import Distillation, SparseCrossEntropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 6, 3)).astype(np.float32) * 2
    teacher = _softmax(rng.normal(size=(2, 5, 6, 3)) * 2).astype(np.float32)
    labels = rng.integers(0, 3, (2, 5, 6))
    labels[:, 0] = 255  # ignored: in neither term
    base = SparseCrossEntropy()
    for weight, t in ((1.0, 1.0), (0.5, 2.0)):
        loss = Distillation(base, weight=weight, temperature=t)
        got = float(loss(pack(labels, teacher), logits))
        q = _softmax(np.log(teacher) / t)
        p = _softmax(logits / t)
        kl = (q * (np.log(q) - np.log(p))).sum(-1)
        valid = labels != 255
        want = float(base(labels, logits)) + weight * t * t * kl[valid].mean()
        assert got == pytest.approx(want, rel=1e-4), (weight, t)
    # labels alone (validation batches): the base loss alone
    assert float(loss(labels, logits)) == pytest.approx(float(base(labels, logits)), rel=1e-6)
    # a teacher that agrees with the student adds nothing
    same = Distillation(base, weight=3.0)
    assert float(same(pack(labels, _softmax(logits)), logits)) == pytest.approx(
        float(base(labels, logits)), rel=1e-4)
    # a Keras object: saved in checkpoints with its options
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (again.weight, again.temperature, type(again.loss)) == (0.5, 2.0, SparseCrossEntropy)
    with pytest.raises(ValueError, match="temperature"):
        Distillation(base, temperature=0)


def test_metric_reads_the_labels_of_a_packed_target():
    from kseg.data.teacher import pack
    from kseg.metrics import ConfusionMatrix

    labels = np.array([[[0, 1], [1, 255]]])
    logits = np.eye(2, dtype=np.float32)[[[[0, 1], [0, 0]]]]
    plain, packed = ConfusionMatrix(2), ConfusionMatrix(2)
    plain.update_state(labels, logits)
    packed.update_state(pack(labels, np.full((1, 2, 2, 2), 0.5)), logits)
    np.testing.assert_array_equal(np.asarray(plain.matrix), np.asarray(packed.matrix))
    assert np.asarray(packed.matrix).sum() == 3


def test_teacher_runs_an_exported_file_at_its_own_size(shapes_export):
    from kseg.data.teacher import Teacher
    from kseg.runtime import TFLiteModel

    path = shapes_export / "model_float32.tflite"
    teacher = Teacher(path)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    probs = teacher(images)  # resized to the file's 48x48 and back
    assert probs.shape == (2, 32, 40, teacher.num_classes)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    same = np.random.default_rng(1).integers(0, 256, (1, 48, 48, 3), dtype=np.uint8)
    np.testing.assert_allclose(teacher(same)[0], TFLiteModel(path)(same[0]), atol=1e-6)
    target = teacher.pack(images, np.zeros((2, 32, 40), np.int32))
    assert target.shape == (2, 32, 40, 1 + teacher.num_classes) and target.dtype == np.float32
    with pytest.raises(ValueError, match="classes"):
        Teacher(path, num_classes=teacher.num_classes + 1)
    with pytest.raises(FileNotFoundError, match="no such .tflite"):
        Teacher(shapes_export / "missing.tflite")


def test_kseg_train_distils_from_an_exported_file_and_resumes(shapes_export, tmp_path):
    from click.testing import CliRunner

    from kseg.cli import main

    teacher = shapes_export / "model_float32.tflite"
    args = ["train", "--data", "shapes:32", "--image-size", "32", "32", "--batch-size", "8",
            "-o", "depth=2", "-o", "base_filters=4", "--epochs", "2", "--teacher", str(teacher),
            "--distill-weight", "2", "--distill-temperature", "1.5", "--out", str(tmp_path / "s")]
    runner = CliRunner()
    r = runner.invoke(main, [*args, "--stop-after", "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"distilling from {teacher} (weight 2, temperature 1.5)" in r.output
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert (config["teacher"], config["distill_weight"], config["distill_temperature"]) == (
        str(teacher), 2.0, 1.5)
    r = runner.invoke(main, args, catch_exceptions=False)  # the same command resumes
    assert r.exit_code == 0 and "resuming" in r.output, r.output
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics] == [1, 2]
    from kseg.losses import Distillation
    from kseg.models import load_model

    loss = load_model(tmp_path / "s" / "last.keras").loss  # what was trained on, and resumed
    assert isinstance(loss, Distillation) and (loss.weight, loss.temperature) == (2.0, 1.5)
    r = runner.invoke(main, [*args[:-1], str(tmp_path / "other"), "--teacher",
                             str(tmp_path / "nowhere.tflite")])
    assert r.exit_code == 1 and "nowhere.tflite: no such file" in r.output


JAX_DISTIL = r"""
import sys
sys.modules["tensorflow"] = None  # the JAX path (and the teacher in it) needs no TensorFlow
from kseg.cli import main
main(["train", "--backend", "jax", "--data", "shapes:16", "--image-size", "32", "32",
      "--batch-size", "8", "-o", "depth=1", "-o", "base_filters=4", "--epochs", "1",
      "--teacher", sys.argv[1], "--out", sys.argv[2]], standalone_mode=False)
"""


@pytest.mark.slow
def test_the_jax_backend_distils_without_tensorflow(shapes_export, tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", JAX_DISTIL,
                           str(shapes_export / "model_float32.tflite"), str(tmp_path / "j")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distilling from" in proc.stdout
    assert json.loads((tmp_path / "j" / "metrics.json").read_text())[0]["epoch"] == 1
