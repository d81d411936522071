"""Precise batch-norm statistics replace lagging moving averages."""

import keras
import numpy as np

from kseg import losses, models
from kseg.train.precise_bn import batchnorm_layers, recompute_batchnorm


def test_recomputed_statistics_make_eval_mode_match_training_mode():
    model = models.build("unet", num_classes=3, input_shape=(32, 32, 3), depth=2, base_filters=4)
    for layer in batchnorm_layers(model):
        layer.momentum = 0.999  # moving averages that barely move: the lag precise BN removes
    model.compile(keras.optimizers.Adam(1e-2), losses.get("ce"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 3, (8, 32, 32)).astype(np.int32)
    for _ in range(5):
        model.train_on_batch(x, y)
    train_mode = np.asarray(model(x, training=True))
    before = np.abs(np.asarray(model(x, training=False)) - train_mode).mean()
    momenta = [layer.momentum for layer in batchnorm_layers(model)]
    assert recompute_batchnorm(model, [x]) == 1  # statistics of exactly this batch
    after = np.abs(np.asarray(model(x, training=False)) - train_mode).mean()
    assert after < 0.05 * before
    assert [layer.momentum for layer in batchnorm_layers(model)] == momenta  # restored

    # over several batches: the running mean of the per-batch statistics
    first = batchnorm_layers(model)[0]
    feed = keras.Model(model.input, first.input)
    assert recompute_batchnorm(model, [x[:4], x[4:]]) == 2
    want = np.mean([np.asarray(feed(b)).mean(axis=(0, 1, 2)) for b in (x[:4], x[4:])], axis=0)
    np.testing.assert_allclose(first.moving_mean.numpy(), want, rtol=1e-4, atol=1e-5)
