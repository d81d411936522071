"""tf.distribute for ``kseg train --strategy``, and the custom training loop multi-worker needs.

- ``default``: one device; ``mirrored``: all local GPUs (MirroredStrategy); ``auto``: mirrored when
  more than one GPU is visible, else default; ``multiworker``: MultiWorkerMirroredStrategy over the
  workers that ``TF_CONFIG`` names (each runs the same command).
- ``--batch-size`` is per replica: the global batch is batch x replicas. The dataset is sharded by
  element (``AutoShardPolicy.DATA``), so workers read different examples, never the same ones.
- Keras 3 ``model.fit`` cannot train under MultiWorkerMirroredStrategy, so ``fit_distributed``
  runs the epochs itself (``strategy.run`` + all-reduced gradients) and drives the same callbacks;
  only the chief (task 0) writes the run folder.
"""

import logging
import json
import math
import os

import numpy as np

from kseg.train.config import STRATEGIES  # noqa: F401  (declared with the options)
from kseg.errors import ConfigError

logger = logging.getLogger(__name__)


def make_strategy(name):
    """The ``tf.distribute`` strategy called ``name`` (create it before any other TF op)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multiworker needs TF_CONFIG (cluster and task) in the "
                             "environment of every worker; see README")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or (name == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_multiworker(strategy):
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief():
    """True unless TF_CONFIG names this process as a non-chief worker."""
    cfg = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = cfg.get("task", {})
    return task.get("type", "worker") in ("chief",) or (
        task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0
        and "chief" not in cfg.get("cluster", {}))


def shard_by_data(dataset):
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fit_distributed(model, strategy, train_ds, val_ds, *, epochs, initial_epoch, steps,
                    callbacks, num_classes, ignore_index, chief=True, log=logger.info):
    """Train ``model`` (built and compiled in ``strategy.scope()``) for epochs
    ``initial_epoch .. epochs-1`` of ``steps`` global batches; returns the per-epoch logs.

    Whether to stop after an epoch (early stopping, a non-finite loss) is the ``chief``'s
    decision, shared with every worker by an all-reduce: a worker that stopped a step apart from
    the others would leave them waiting in the next all-reduce for ever."""
    import tensorflow as tf

    from kseg import metrics as kmetrics
    from kseg.losses import split_heads
    from kseg.models.auxiliary import strides
    from kseg.runtime import scores_to_labels

    loss_fn = model.loss
    replicas = strategy.num_replicas_in_sync
    aux = strides(model)  # auxiliary heads packed as rows under the main prediction
    with strategy.scope():
        train_cm = kmetrics.ConfusionMatrix(num_classes, ignore_index, aux_strides=aux,
                                            name="train_cm")
    dist = iter(strategy.experimental_distribute_dataset(shard_by_data(train_ds)))

    @tf.function
    def train_step(batch):
        def step(x, y):
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                loss = loss_fn(y, pred)
                scaled = loss / replicas  # gradients are summed over replicas
            grads = tape.gradient(scaled, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
            train_cm.update_state(y, pred)
            return loss

        per_replica = strategy.run(step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
    def chief_says(flag):  # each worker adds its flag; only the chief's is ever 1
        votes = strategy.run(lambda f: tf.identity(f), args=(flag,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

    for cb in callbacks:
        cb.set_model(model)
    for cb in callbacks:
        cb.on_train_begin()
    history = []
    for epoch in range(initial_epoch, epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        train_cm.reset_state()
        total = 0.0
        for i in range(steps):
            loss = float(train_step(next(dist)))
            total += loss
            for cb in callbacks:
                cb.on_train_batch_end(i, {"loss": loss})
        for cb in callbacks:
            cb.on_test_begin()
        cm = np.zeros((num_classes, num_classes), np.int64)
        val_loss, val_batches = 0.0, 0
        for x, y in val_ds:
            pred = model(x, training=False)
            val_loss += float(loss_fn(y, pred))
            val_batches += 1
            main = split_heads(np.asarray(pred), aux)[0]
            cm += kmetrics.confusion_matrix(np.asarray(y), scores_to_labels(main), num_classes,
                                            ignore_index)
        for cb in callbacks:
            cb.on_test_end()
        train_scores = train_cm.result()
        val_scores = kmetrics.scores(cm)
        logs = {"loss": total / steps, "miou": float(train_scores["miou"]),
                "pixel_accuracy": float(train_scores["pixel_accuracy"]),
                "val_loss": val_loss / max(val_batches, 1), "val_miou": val_scores["miou"],
                "val_pixel_accuracy": val_scores["pixel_accuracy"]}
        if not all(math.isfinite(v) for v in logs.values()):
            log(f"epoch {epoch + 1}: non-finite values {logs}")
        log(f"epoch {epoch + 1}/{epochs}: " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        history.append(logs)
        mine = 1.0 if chief and model.stop_training else 0.0
        model.stop_training = float(chief_says(tf.constant(mine))) > 0
        if model.stop_training:
            break
    # as Keras fit ends: an optimizer keeping weight averages (--ema) leaves them in the model
    model.optimizer.finalize_variable_values(model.trainable_variables)
    for cb in callbacks:
        cb.on_train_end()
    return history
