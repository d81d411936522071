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
