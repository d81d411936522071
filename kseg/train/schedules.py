"""Learning-rate schedules and optimizers of a kseg run (Keras objects, saved in checkpoints).

- ``poly``: DeepLab's lr * (1 - step / total) ** power;
- ``cosine``: cosine decay to 1 % of the rate;
- ``constant``;
each after an optional linear warm-up from 0 over ``warmup_steps``.
"""

import math

import keras

from kseg.train.config import OPTIMIZERS, SCHEDULES  # noqa: F401  (declared with the options)
from kseg.errors import ConfigError


@keras.saving.register_keras_serializable(package="kseg")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, learning_rate, total_steps, kind="poly", warmup_steps=0, power=0.9,
                 final_fraction=0.01):
        if kind not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        self.learning_rate = float(learning_rate)
        self.total_steps = max(1, int(total_steps))
        self.kind = kind
        self.warmup_steps = max(0, int(warmup_steps))
        self.power = float(power)
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        lr = self.learning_rate
        decay_steps = float(max(1, self.total_steps - self.warmup_steps))
        t = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        if self.kind == "poly":
            rate = lr * ops.power(1.0 - t, self.power)
        elif self.kind == "cosine":
            floor = self.final_fraction
            rate = lr * (floor + (1 - floor) * 0.5 * (1.0 + ops.cos(math.pi * t)))
        else:
            rate = lr * ops.ones_like(t)
        if self.warmup_steps:
            warm = lr * (step + 1.0) / self.warmup_steps
            rate = ops.where(step < self.warmup_steps, warm, rate)
        return rate

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "kind": self.kind, "warmup_steps": self.warmup_steps, "power": self.power,
                "final_fraction": self.final_fraction}


def make_schedule(config, steps_per_epoch):
    """The learning-rate schedule ``config`` asks for, over the whole run."""
    return WarmupDecay(
        config.learning_rate, total_steps=config.epochs * steps_per_epoch, kind=config.schedule,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch), power=config.poly_power,
    )


def make_optimizer(config, steps_per_epoch):
    """The optimizer ``config`` asks for, with its schedule over the whole run (and a moving
    average of the weights with ``config.ema``: ``kseg.train.callbacks.AveragedWeights``)."""
    schedule = make_schedule(config, steps_per_epoch)
    averaging = dict(use_ema=True, ema_momentum=float(config.ema)) if config.ema else {}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=False,
                                    weight_decay=config.weight_decay or None, **averaging)
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **averaging)
