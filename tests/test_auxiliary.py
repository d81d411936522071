"""Auxiliary heads (``--aux-loss-weight``, Fast-SCNN's deep supervision): the packed training
output (each head at its own resolution), the head labels, its loss and metric, a checkpoint that resumes with its heads and loads for inference
without them, an export that holds the main output alone, the custom distributed loop, and the
errors. A step under JAX: tests/test_jax_backend.py."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kseg import losses, metrics, models
from kseg.cli import main
from kseg.errors import ConfigError
from kseg.models import auxiliary

RNG = np.random.default_rng(0)


def _with_heads(num_classes=3, size=(32, 48)):
    model = models.build("fastscnn", num_classes=num_classes, input_shape=(*size, 3), width=0.25)
    return model, auxiliary.add_heads(model, models.auxiliary_taps("fastscnn"))


def test_heads_pack_under_the_main_output_at_their_own_resolution():
    model, train = _with_heads()
    assert auxiliary.strides(model) == [] and auxiliary.strides(train) == [8, 32]
    assert auxiliary.heads(model) == 1 and auxiliary.heads(train) == 3
    assert train.output.shape[1:] == (32 + 4 + 1, 48, 3)  # rows: the image's, then 4x6, 1x2
    x = RNG.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    packed = np.asarray(train(x, training=False))
    main, aux1, aux2 = losses.split_heads(packed, [8, 32])
    assert aux1.shape == (2, 4, 6, 3) and aux2.shape == (2, 1, 2, 3)
    np.testing.assert_allclose(main, np.asarray(model(x, training=False)), atol=1e-6)
    assert (packed[:, 32:36, 6:] == 0).all() and (packed[:, 36:, 2:] == 0).all()  # the padding
    # the 1/8 feature is 4x8 (the input is padded to 32x64): the head keeps the 4x6 cells that
    # see the image
    assert model.get_layer("downsample_dsconv2_pointwise_relu").output.shape[1:3] == (4, 8)
    inference = auxiliary.inference_model(train)
    assert inference.count_params() == model.count_params() < train.count_params()
    np.testing.assert_allclose(np.asarray(inference(x, training=False)), main, atol=1e-6)
    # a model of any size (--crop): each head's grid is ceil(size / stride)
    any_size = models.build("fastscnn", num_classes=3, input_shape=(None, None, 3), width=0.25)
    any_size = auxiliary.add_heads(any_size, models.auxiliary_taps("fastscnn"))
    odd = np.asarray(any_size(RNG.integers(0, 256, (1, 33, 70, 3), dtype=np.uint8)))
    assert odd.shape == (1, 33 + 5 + 2, 70, 3)
    assert [p.shape[1:3] for p in losses.split_heads(odd, [8, 32])] == [(33, 70), (5, 9), (2, 3)]
    with pytest.raises(models.ModelConfigError, match="already has auxiliary heads"):
        auxiliary.add_heads(train, models.auxiliary_taps("fastscnn"))
    with pytest.raises(models.ModelConfigError, match="no layer 'nowhere'"):
        auxiliary.add_heads(model, {"nowhere": 8})
    with pytest.raises(models.ModelConfigError, match="is 4x8: not a stride-16 grid of the 32x48 input"):
        auxiliary.add_heads(model, {"downsample_dsconv2_pointwise_relu": 16})
    with pytest.raises(ValueError, match="11 rows cannot hold"):  # 8 + 1 + 1 = 10, 9 + 2 + 1 = 12
        losses.split_heads(np.zeros((1, 11, 4, 3)), [8, 32])


def test_head_labels_are_the_labels_at_each_cells_centre():
    y = RNG.integers(0, 5, (2, 9, 8))
    np.testing.assert_array_equal(np.asarray(losses.head_labels(y, 2)), y[:, [1, 3, 5, 7, 8]][:, :, [1, 3, 5, 7]])
    np.testing.assert_array_equal(np.asarray(losses.head_labels(y, 4)), y[:, [2, 6, 8]][:, :, [2, 6]])
    assert losses.head_size((360, 480), 32) == (12, 15) and losses.head_size((360, 480), 8) == (45, 60)


def test_deep_supervision_is_the_main_loss_plus_the_weighted_head_losses():
    y = RNG.integers(0, 3, (2, 8, 8)).astype("float32")
    y[:, 0] = 255
    y[:, :, 5] = 255
    main = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    aux1, aux2 = RNG.normal(size=(2, 4, 4, 3)).astype("float32"), RNG.normal(size=(2, 2, 2, 3)).astype("float32")
    pred = np.asarray(auxiliary.PackHeads([2, 4])([main, aux1, aux2]))
    assert pred.shape == (2, 8 + 4 + 2, 8, 3)
    for got, want in zip(losses.split_heads(pred, [2, 4]), (main, aux1, aux2)):
        np.testing.assert_array_equal(got, want)
    ce = losses.SparseCrossEntropy(class_weights=[1.0, 2.0, 0.5])
    y2, y4 = y[:, 1::2, 1::2], y[:, 2::4, 2::4]  # the cells' centres; y2 keeps ignored pixels
    assert (y2 == 255).any()
    parts = [float(ce(y, main)), float(ce(y2, aux1)), float(ce(y4, aux2))]
    deep = losses.DeepSupervision(ce, ce, [0.4, 0.25], [2, 4])
    assert float(deep(y, pred)) == pytest.approx(parts[0] + 0.4 * parts[1] + 0.25 * parts[2],
                                                 rel=1e-6)
    again = losses.DeepSupervision.from_config(deep.get_config())
    assert again.strides == [2, 4]
    assert float(again(y, pred)) == pytest.approx(float(deep(y, pred)), rel=1e-6)
    # with a teacher, its term is on the main output alone; the heads learn the labels
    teacher = RNG.dirichlet(np.ones(3), size=(2, 8, 8)).astype("float32")
    target = np.concatenate([y[..., None], teacher], axis=-1)
    distil = losses.Distillation(ce, weight=2.0)
    both = losses.DeepSupervision(distil, ce, [0.4, 0.25], [2, 4])
    expect = float(distil(target, main)) + 0.4 * parts[1] + 0.25 * parts[2]
    assert float(both(target, pred)) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(Exception, match="one weight >= 0 per auxiliary head"):
        losses.DeepSupervision(ce, ce, [], [])
    with pytest.raises(Exception, match="one stride >= 1 per weight"):
        losses.DeepSupervision(ce, ce, [0.4], [8, 32])
    # the metric scores the main prediction alone
    packed, plain = metrics.ConfusionMatrix(3, aux_strides=[2, 4]), metrics.ConfusionMatrix(3)
    packed.update_state(y, pred)
    plain.update_state(y, main)
    np.testing.assert_array_equal(np.asarray(packed.matrix), np.asarray(plain.matrix))
    assert metrics.ConfusionMatrix.from_config(packed.get_config()).aux_strides == [2, 4]
    older = {k: v for k, v in deep.get_config().items() if k != "strides"}
    with pytest.raises(ConfigError, match="older kseg"):
        losses.DeepSupervision.from_config(older)


TRAIN = ["train", "--data", "shapes:32", "--image-size", "32", "48", "--batch-size", "8",
         "--model", "fastscnn", "-o", "width=0.25", "--learning-rate", "0.01", "--epochs", "2"]


def test_kseg_train_with_auxiliary_heads_resumes_and_exports_the_main_output(tmp_path):
    run = tmp_path / "aux"
    args = [*TRAIN, "--aux-loss-weight", "0.4", "--out", str(run)]
    runner = CliRunner()
    r = runner.invoke(main, [*args, "--stop-after", "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "2 auxiliary heads at strides 8, 32 (" in r.output and "loss weight 0.4" in r.output
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
    assert auxiliary.strides(checkpoint) == [8, 32]
    assert isinstance(checkpoint.loss, losses.DeepSupervision)
    assert checkpoint.loss.weights == [0.4, 0.4] and checkpoint.loss.strides == [8, 32]
    for compile in (True, False):  # to predict with: the main output alone
        inference = models.load_model(run / "last.keras", compile=compile)
        assert auxiliary.heads(inference) == 1 and inference.output.shape[-1] == classes
    assert checkpoint.output.shape[1:] == (32 + 4 + 1, 48, classes)

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
    train.compile(optimizer="adam", loss=losses.DeepSupervision(ce, ce, [0.4, 0.4], [8, 32]))
    x = RNG.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = RNG.integers(0, 3, (8, 32, 32)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = fit_distributed(train, tf.distribute.get_strategy(), data.repeat(), data, epochs=1,
                              initial_epoch=0, steps=2, callbacks=[], num_classes=3,
                              ignore_index=255, log=lambda line: None)
    main_only = auxiliary.inference_model(train).predict(x, verbose=0)
    expect = metrics.scores(metrics.confusion_matrix(y, main_only.argmax(-1), 3))
    assert history[0]["val_miou"] == pytest.approx(expect["miou"], abs=1e-6)


def test_a_checkpoint_of_the_older_channel_packing_predicts_but_does_not_train(tmp_path,
                                                                               monkeypatch):
    """Heads an older kseg packed on the channel axis (``PackHeads`` without strides, a
    ``DeepSupervision`` without strides): the checkpoint loads to predict with, its main output;
    resuming it is refused with a message; any run's metric config of ``heads: 1`` still loads."""
    import keras

    from kseg.errors import InputError

    image = keras.Input((8, 8, 3))
    main = keras.layers.Conv2D(3, 1, name="main")(image)
    head = keras.layers.Conv2D(3, 1, name="aux1_classifier")(image)
    old = keras.Model(image, auxiliary.PackHeads(name=auxiliary.OUTPUTS)([main, head]))
    assert old.output.shape[1:] == (8, 8, 6)
    ce = losses.SparseCrossEntropy()
    deep = losses.DeepSupervision(ce, ce, [0.4], [1])
    legacy_loss = {k: v for k, v in deep.get_config().items() if k != "strides"}
    monkeypatch.setattr(losses.DeepSupervision, "get_config", lambda self: legacy_loss)
    cm = metrics.ConfusionMatrix(3)
    monkeypatch.setattr(metrics.ConfusionMatrix, "get_config",
                        lambda self: {"num_classes": 3, "ignore_index": 255, "heads": 2,
                                      "name": "confusion"})
    old.compile(optimizer="adam", loss=deep, metrics=[cm])
    old.save(tmp_path / "old.keras")
    monkeypatch.undo()

    x = RNG.integers(0, 256, (1, 8, 8, 3)).astype("float32")
    inference = models.load_model(tmp_path / "old.keras")
    assert auxiliary.heads(inference) == 1
    np.testing.assert_allclose(np.asarray(inference(x)), np.asarray(old(x))[..., :3], atol=1e-6)
    with pytest.raises(InputError, match="cannot train from this checkpoint: .*older kseg"):
        models.load_model(tmp_path / "old.keras", training=True)
    as_saved = models.load_model(tmp_path / "old.keras", compile=False, training=True)
    with pytest.raises(models.ModelConfigError, match="older kseg"):
        auxiliary.strides(as_saved)
    # every run's metric before: heads 1, which loads as no heads
    one = metrics.ConfusionMatrix.from_config({"num_classes": 3, "heads": 1, "name": "c"})
    assert one.aux_strides == []
