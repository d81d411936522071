"""Auxiliary heads (``--aux-loss-weight``, Fast-SCNN's deep supervision): the packed training
output, its loss and metric, a checkpoint that resumes with its heads and loads for inference
without them, an export that holds the main output alone, the custom distributed loop, and the
errors. A step under JAX: tests/test_jax_backend.py."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kseg import losses, metrics, models
from kseg.cli import main
from kseg.models import auxiliary

RNG = np.random.default_rng(0)


def _with_heads(num_classes=3, size=(32, 48)):
    model = models.build("fastscnn", num_classes=num_classes, input_shape=(*size, 3), width=0.25)
    return model, auxiliary.add_heads(model, models.auxiliary_taps("fastscnn"))


def test_heads_pack_after_the_main_output_which_stays_the_models():
    model, train = _with_heads()
    assert auxiliary.heads(model) == 1 and auxiliary.heads(train) == 3
    assert train.output.shape[1:] == (32, 48, 9)
    x = RNG.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    packed = np.asarray(train(x, training=False))
    main, aux1, aux2 = losses.split_heads(packed, 3)
    np.testing.assert_allclose(main, np.asarray(model(x, training=False)), atol=1e-6)
    assert not np.allclose(aux1, main) and not np.allclose(aux2, aux1)
    inference = auxiliary.inference_model(train)
    assert inference.count_params() == model.count_params() < train.count_params()
    np.testing.assert_allclose(np.asarray(inference(x, training=False)), main, atol=1e-6)
    # a model of any size (--crop): the heads crop to the image as the main output does
    any_size = models.build("fastscnn", num_classes=3, input_shape=(None, None, 3), width=0.25)
    any_size = auxiliary.add_heads(any_size, models.auxiliary_taps("fastscnn"))
    odd = RNG.integers(0, 256, (1, 33, 70, 3), dtype=np.uint8)
    assert np.asarray(any_size(odd, training=False)).shape == (1, 33, 70, 9)
    with pytest.raises(models.ModelConfigError, match="already has auxiliary heads"):
        auxiliary.add_heads(train, models.auxiliary_taps("fastscnn"))
    with pytest.raises(models.ModelConfigError, match="no layer 'nowhere'"):
        auxiliary.add_heads(model, {"nowhere": 8})
    with pytest.raises(ValueError, match="cannot hold 2 heads"):
        losses.split_heads(np.zeros((1, 2, 2, 9)), 2)


def test_deep_supervision_is_the_main_loss_plus_the_weighted_head_losses():
    y = RNG.integers(0, 3, (2, 8, 8)).astype("float32")
    y[:, 0] = 255
    pred = RNG.normal(size=(2, 8, 8, 9)).astype("float32")
    ce = losses.SparseCrossEntropy(class_weights=[1.0, 2.0, 0.5])
    parts = [float(ce(y, p)) for p in losses.split_heads(pred, 3)]
    deep = losses.DeepSupervision(ce, ce, [0.4, 0.25])
    assert float(deep(y, pred)) == pytest.approx(parts[0] + 0.4 * parts[1] + 0.25 * parts[2],
                                                 rel=1e-6)
    again = losses.DeepSupervision.from_config(deep.get_config())
    assert float(again(y, pred)) == pytest.approx(float(deep(y, pred)), rel=1e-6)
    # with a teacher, its term is on the main output alone; the heads learn the labels
    teacher = RNG.dirichlet(np.ones(3), size=(2, 8, 8)).astype("float32")
    target = np.concatenate([y[..., None], teacher], axis=-1)
    distil = losses.Distillation(ce, weight=2.0)
    both = losses.DeepSupervision(distil, ce, [0.4, 0.25])
    main, aux1, aux2 = losses.split_heads(pred, 3)
    expect = float(distil(target, main)) + 0.4 * float(ce(y, aux1)) + 0.25 * float(ce(y, aux2))
    assert float(both(target, pred)) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(Exception, match="one weight >= 0 per auxiliary head"):
        losses.DeepSupervision(ce, ce, [])
    # the metric scores the main prediction alone
    packed, plain = metrics.ConfusionMatrix(3, heads=3), metrics.ConfusionMatrix(3)
    packed.update_state(y, pred)
    plain.update_state(y, pred[..., :3])
    np.testing.assert_array_equal(np.asarray(packed.matrix), np.asarray(plain.matrix))
    assert metrics.ConfusionMatrix.from_config(packed.get_config()).heads == 3


TRAIN = ["train", "--data", "shapes:32", "--image-size", "32", "48", "--batch-size", "8",
         "--model", "fastscnn", "-o", "width=0.25", "--learning-rate", "0.01", "--epochs", "2"]


def test_kseg_train_with_auxiliary_heads_resumes_and_exports_the_main_output(tmp_path):
    run = tmp_path / "aux"
    args = [*TRAIN, "--aux-loss-weight", "0.4", "--out", str(run)]
    runner = CliRunner()
    r = runner.invoke(main, [*args, "--stop-after", "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "2 auxiliary heads (" in r.output and "loss weight 0.4" in r.output
    config = json.loads((run / "config.json").read_text())
    assert config["aux_loss_weight"] == 0.4
    classes = len(config["classes"])
    r = runner.invoke(main, args, catch_exceptions=False)  # the same command resumes
    assert r.exit_code == 0 and "resuming" in r.output, r.output
    entries = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in entries] == [1, 2]
    assert all(np.isfinite(e["loss"]) and 0 <= e["val_miou"] <= 1 for e in entries)

    # what resumes: the heads and their loss
    checkpoint = models.load_model(run / "last.keras", training=True)
    assert auxiliary.heads(checkpoint) == 3
    assert isinstance(checkpoint.loss, losses.DeepSupervision)
    assert checkpoint.loss.weights == [0.4, 0.4]
    for compile in (True, False):  # to predict with: the main output alone
        inference = models.load_model(run / "last.keras", compile=compile)
        assert auxiliary.heads(inference) == 1 and inference.output.shape[-1] == classes
    assert checkpoint.output.shape[-1] == 3 * classes

    # --init-from such a run starts a run with heads from its heads too
    from kseg.train.trainer import init_weights

    _, fresh = _with_heads(num_classes=classes)
    assert "kept fresh" not in init_weights(fresh, run)

    r = runner.invoke(main, ["export", str(run), "--tflite", "--out", str(tmp_path / "exp")],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tmp_path / "exp" / "model_float32.tflite"))
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 32, 48, classes]


def test_a_model_without_heads_is_refused_before_the_run_folder_is_written(tmp_path):
    args = [*TRAIN[:8], "--model", "unet", "-o", "depth=2", "--aux-loss-weight", "0.4",
            "--out", str(tmp_path / "u")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1
    assert "--aux-loss-weight: model unet has no auxiliary heads (models with them: fastscnn)" \
        in r.output
    assert not (tmp_path / "u").exists()
    r = CliRunner().invoke(main, [*TRAIN, "--aux-loss-weight", "-1", "--out", str(tmp_path / "n")])
    assert r.exit_code != 0 and "aux_loss_weight must be >= 0" in r.output


def test_the_custom_distributed_loop_scores_the_main_output(tmp_path):
    """``fit_distributed`` (multi-worker's loop), here on the default strategy in one process."""
    import tensorflow as tf

    from kseg.train.distribute import fit_distributed

    _, train = _with_heads(size=(32, 32))
    ce = losses.SparseCrossEntropy()
    train.compile(optimizer="adam", loss=losses.DeepSupervision(ce, ce, [0.4, 0.4]))
    x = RNG.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = RNG.integers(0, 3, (8, 32, 32)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = fit_distributed(train, tf.distribute.get_strategy(), data.repeat(), data, epochs=1,
                              initial_epoch=0, steps=2, callbacks=[], num_classes=3,
                              ignore_index=255, log=lambda line: None)
    main_only = auxiliary.inference_model(train).predict(x, verbose=0)
    expect = metrics.scores(metrics.confusion_matrix(y, main_only.argmax(-1), 3))
    assert history[0]["val_miou"] == pytest.approx(expect["miou"], abs=1e-6)
