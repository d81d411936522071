"""Learning-rate schedules, optimizers and early stopping."""

import keras
import numpy as np
import pytest

from kseg.train import TrainConfig
from kseg.train.callbacks import EarlyStopOnMiou, epochs_since_best
from kseg.train.schedules import WarmupDecay, make_optimizer


def lr(schedule, step):
    return float(schedule(step))


def test_poly_is_deeplabs_rule_after_warmup():
    s = WarmupDecay(0.01, total_steps=110, kind="poly", warmup_steps=10, power=0.9)
    assert lr(s, 0) == pytest.approx(0.001)  # linear warm-up from 0
    assert lr(s, 9) == pytest.approx(0.01)
    assert lr(s, 10) == pytest.approx(0.01)
    assert lr(s, 60) == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-5)
    assert lr(s, 110) == pytest.approx(0.0, abs=1e-9)


def test_cosine_and_constant():
    c = WarmupDecay(1.0, total_steps=100, kind="cosine")
    assert lr(c, 0) == pytest.approx(1.0) and lr(c, 50) == pytest.approx(0.505, rel=1e-4)
    assert lr(c, 100) == pytest.approx(0.01, rel=1e-4)
    assert lr(WarmupDecay(0.3, 100, kind="constant"), 77) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="schedule"):
        WarmupDecay(0.1, 10, kind="step")


def test_optimizers_and_their_schedules_survive_a_checkpoint(tmp_path):
    for name in ("sgd", "adamw"):
        cfg = TrainConfig(optimizer=name, schedule="poly", warmup_epochs=1, epochs=4,
                          learning_rate=0.05)
        opt = make_optimizer(cfg, steps_per_epoch=10)
        assert isinstance(opt, keras.optimizers.SGD if name == "sgd" else keras.optimizers.AdamW)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=opt, loss="mse")
        model.train_on_batch(np.ones((2, 3)), np.ones((2, 2)))
        model.save(tmp_path / f"{name}.keras")
        from kseg.models import load_model

        again = load_model(tmp_path / f"{name}.keras")
        sched = again.optimizer._learning_rate  # noqa: SLF001
        assert isinstance(sched, WarmupDecay) and sched.total_steps == 40 and sched.warmup_steps == 10
    assert make_optimizer(TrainConfig(optimizer="sgd", momentum=0.8), 5).momentum == 0.8
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")


class FakeRun:
    def __init__(self, entries):
        self.entries = entries

    def metrics(self):
        return self.entries


def test_early_stopping_counts_epochs_since_the_best():
    entries = [{"epoch": 1, "best": True}, {"epoch": 2, "best": True}, {"epoch": 3, "best": False},
               {"epoch": 4, "best": False}]
    assert epochs_since_best(entries) == 2
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    for patience, stops in ((2, True), (3, False)):
        cb = EarlyStopOnMiou(FakeRun(entries), patience, log=lambda *_: None)
        cb.set_model(model)
        model.stop_training = False
        cb.on_epoch_end(3)
        assert model.stop_training is stops


def test_a_run_that_stopped_early_is_not_trained_again(tmp_path):
    """At a learning rate of 1e-12 (no batch norm) the weights cannot move, so val mIoU never
    beats epoch 1 and patience 1 stops the run after epoch 2 of 6. The same command again, or
    with more epochs, finds the stop in the run folder and trains nothing."""
    import json

    from click.testing import CliRunner

    from kseg.cli import main

    out = tmp_path / "run"
    train = ["train", "--data", "shapes:16", "--image-size", "16", "16", "--batch-size", "4",
             "-o", "depth=1", "-o", "base_filters=2", "-o", "batch_norm=false",
             "--augment", "none", "--learning-rate", "1e-12", "--early-stopping", "1",
             "--out", str(out)]
    r = CliRunner().invoke(main, [*train, "--epochs", "6"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "early stopping: val mIoU has not improved for 1 epochs (patience 1)" in r.output

    def committed():
        return (json.loads((out / "state.json").read_text()),
                [e["epoch"] for e in json.loads((out / "metrics.json").read_text())],
                len(json.loads((out / "sessions.json").read_text())),
                sorted(p.name for p in (out / "checkpoints").iterdir()),
                (out / "last.keras").stat().st_mtime_ns, (out / "best.keras").stat().st_mtime_ns)

    stopped = committed()
    assert stopped[0]["epoch"] == 2 and stopped[1] == [1, 2] and stopped[2] == 1
    for epochs in ("6", "9"):  # the same command, then a raised epoch count (same run)
        r = CliRunner().invoke(main, [*train, "--epochs", epochs], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert (f"{out}: stopped early after epoch 2 (no better val mIoU for 1 epochs); "
                "nothing to do") in r.output
        assert "resuming" not in r.output and "Epoch" not in r.output
        assert f"(epoch 1); run folder {out}" in r.output  # the summary of the stopped run
        assert committed() == stopped  # no epoch, session or checkpoint written
    assert "a larger --early-stopping, or none, trains on" in r.output
    # more patience: the same run trains on from epoch 2
    patient = [*train[:train.index("--early-stopping")], *train[train.index("--out"):]]
    r = CliRunner().invoke(main, [*patient, "--epochs", "4"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "Epoch 3/4" in r.output
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())] == [1, 2, 3, 4]
