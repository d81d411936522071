"""A moving average of the weights (``kseg train --ema``): validation and checkpoints see the
averages, training steps the raw weights (a resumed run: tests/test_resume_kill.py)."""

import keras
import numpy as np
import pytest

from kseg.train import TrainConfig
from kseg.train.callbacks import AveragedWeights


class Recorder(keras.callbacks.Callback):
    """The model's weights at each point of interest."""

    def __init__(self):
        super().__init__()
        self.raw, self.epoch_begin, self.validated, self.saved = [], [], [], []

    def _weights(self):
        return [np.array(w) for w in self.model.get_weights()]

    def on_train_batch_end(self, batch, logs=None):
        self.raw.append(self._weights())

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_begin.append(self._weights())

    def on_test_begin(self, logs=None):
        self.validated.append(self._weights())

    def on_epoch_end(self, epoch, logs=None):
        self.saved.append(self._weights())  # where kseg's CommitEpoch saves checkpoints


def test_validation_and_checkpoints_see_the_average_training_the_raw_weights():
    decay = 0.5
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(keras.optimizers.AdamW(0.05, use_ema=True, ema_momentum=decay), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 2))
    average, restore = AveragedWeights().pair()
    rec = Recorder()
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), shuffle=False, verbose=0,
              callbacks=[average, rec, restore])
    assert len(rec.raw) == 6
    expected, ema = [], None
    for step, raw in enumerate(rec.raw):  # Keras' rule: the first step copies, then decays
        ema = raw if ema is None else [decay * a + (1 - decay) * w for a, w in zip(ema, raw)]
        if step % 3 == 2:
            expected.append(ema)
    for epoch in range(2):
        for got in (rec.validated[epoch], rec.saved[epoch]):
            for g, e in zip(got, expected[epoch]):
                np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    # epoch 2 trains on from epoch 1's last raw weights, not from their average
    for g, r in zip(rec.epoch_begin[1], rec.raw[2]):
        np.testing.assert_array_equal(g, r)
    assert not np.allclose(rec.raw[2][0], expected[0][0])
    # after fit the model holds the averages (Keras' finalize step)
    for g, e in zip(model.get_weights(), expected[1]):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_ema_decay_is_validated():
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)


def test_averaged_weights_get_their_own_batchnorm_statistics_and_loss_scaling_is_seen_through():
    from kseg import losses, models

    keras.utils.set_random_seed(1)
    model = models.build("unet", num_classes=3, input_shape=(32, 32, 3), depth=2, base_filters=4)
    optimizer = keras.optimizers.LossScaleOptimizer(  # as under mixed float16
        keras.optimizers.AdamW(1e-2, use_ema=True, ema_momentum=0.5))
    model.compile(optimizer, losses.get("ce"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 3, (8, 32, 32)).astype(np.int32)
    average, restore = AveragedWeights(batches=[x]).pair()
    seen = {}

    class AtValidation(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen["eval"] = np.asarray(self.model(x, training=False))
            seen["train"] = np.asarray(self.model(x, training=True))

    model.fit(x, y, batch_size=4, epochs=1, validation_data=(x, y), verbose=0,
              callbacks=[average, AtValidation(), restore])
    # statistics recomputed on exactly this batch, after the averages were swapped in
    np.testing.assert_allclose(seen["eval"], seen["train"], rtol=1e-3, atol=1e-3)
