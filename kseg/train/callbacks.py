"""Keras callbacks of a kseg run."""

import logging
import math
import time

import keras

from kseg.errors import KsegError
from kseg.train.precise_bn import recompute_batchnorm

logger = logging.getLogger(__name__)

RETRY = ("Try a lower --learning-rate (a changed configuration: give another --out, or "
         "--overwrite)")


class TrainingDivergedError(KsegError, RuntimeError):
    """The loss became NaN or infinite."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN or infinite, with a message saying where."""

    def __init__(self, last_good=None):
        super().__init__()
        self.last_good = last_good
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            where = self.last_good() if callable(self.last_good) else self.last_good
            raise TrainingDivergedError(
                f"loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}; "
                f"training stopped. The last good checkpoint is kept: {where or 'none yet'}. "
                f"{RETRY}."
            )


class CommitEpoch(keras.callbacks.Callback):
    """After each epoch: keep best.keras by val mIoU, then commit the epoch to the run folder."""

    def __init__(self, run, best_miou=None, monitor="val_miou"):
        super().__init__()
        self.run = run
        self.best = best_miou
        self.monitor = monitor
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not all(math.isfinite(v) for k, v in logs.items() if "loss" in k):
            raise TrainingDivergedError(
                f"epoch {epoch + 1} ended with a non-finite loss ({logs}); it is not saved. "
                f"The last good checkpoint is kept: {self.run.checkpoint_path() or 'none yet'}. "
                f"{RETRY}."
            )
        score = logs.get(self.monitor)
        improved = score is not None and (self.best is None or score > self.best)
        if improved:
            self.best = score
            self.run.save_best(self.model)
        entry = {"epoch": epoch + 1, **logs, "seconds": round(time.time() - self._t0, 2),
                 "best": bool(improved)}
        self.run.commit_epoch(self.model, epoch + 1, entry, self.best)


def epochs_since_best(entries):
    """Finished epochs after the best one (by val mIoU) in metrics.json entries."""
    best = max((e["epoch"] for e in entries if e.get("best")), default=0)
    last = max((e["epoch"] for e in entries), default=0)
    return last - best


class EarlyStopOnMiou(keras.callbacks.Callback):
    """Stops when val mIoU has not improved for ``patience`` epochs (read from the run's committed
    metrics, so the count survives a resume). Runs after ``CommitEpoch``."""

    def __init__(self, run, patience, log=logger.info):
        super().__init__()
        self.run, self.patience, self.log = run, int(patience), log

    def on_epoch_end(self, epoch, logs=None):
        stale = epochs_since_best(self.run.metrics())
        if stale >= self.patience:
            self.model.stop_training = True
            self.log(f"early stopping: val mIoU has not improved for {stale} epochs "
                     f"(patience {self.patience})")


class OverlaySamples(keras.callbacks.Callback):
    """Each epoch, a few validation images as image | truth | prediction to TensorBoard."""

    def __init__(self, logdir, images, labels, num_classes, ignore_index=255):
        super().__init__()
        self.logdir, self.images, self.labels = str(logdir), images, labels
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import numpy as np
        import tensorflow as tf

        from kseg.losses import split_heads
        from kseg.models.auxiliary import strides
        from kseg.report.figures import triptych
        from kseg.runtime import scores_to_labels

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.logdir)
        scores = split_heads(self.model.predict_on_batch(self.images), strides(self.model))[0]
        pred = scores_to_labels(scores)
        grid = np.stack([triptych(im, lb, pr, self.num_classes, self.ignore_index)
                         for im, lb, pr in zip(self.images, self.labels, pred)])
        with self._writer.as_default():
            tf.summary.image("val/image_truth_prediction", grid, step=epoch + 1,
                             max_outputs=len(grid))
        self._writer.flush()


class AveragedWeights(keras.callbacks.Callback):
    """Validates and checkpoints the exponential moving average of the weights that an optimizer
    built with ``use_ema=True`` keeps (Polyak averaging; ``kseg train --ema DECAY``).

    The optimizer steps the raw weights and updates its averages after every step. This callback
    swaps the two sets before validation, so that validation, best.keras and every checkpoint hold
    the averages as the model's weights (what ``kseg evaluate``, ``kseg export`` and
    ``--init-from`` read), with the raw weights in the optimizer's average slots; its
    ``RestoreRawWeights`` partner (``pair()``, placed after the checkpointing callback) swaps them
    back before training goes on. A resumed run's checkpoint is in the swapped state:
    ``resumed=True`` swaps it back before the first step. Batch-norm statistics are recomputed for
    the averaged weights from ``batches`` (uint8 image batches) when given; otherwise they keep the
    moving statistics of the raw weights.
    """

    def __init__(self, resumed=False, batches=None):
        super().__init__()
        self.resumed = bool(resumed)
        self.batches = list(batches) if batches else []
        self.averaged = False

    def _slots(self):
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # mixed float16 loss scaling
        if not getattr(optimizer, "use_ema", False):
            raise ValueError("AveragedWeights needs an optimizer built with use_ema=True")
        variables = optimizer._trainable_variables  # noqa: SLF001
        averages = getattr(optimizer, "_model_variables_moving_average", [])
        if not variables or len(variables) != len(averages):
            raise ValueError(f"the optimizer holds {len(averages)} weight averages for "
                             f"{len(variables)} trainable weights; is it built?")
        return [(v, a) for v, a in zip(variables, averages) if a is not None]

    def swap(self):
        for variable, average in self._slots():
            raw = keras.ops.convert_to_numpy(variable)
            variable.assign(average)
            average.assign(raw)

    def on_train_begin(self, logs=None):
        if self.resumed:  # the checkpoint holds the averages
            self.swap()

    def _average(self):
        if not self.averaged:
            self.swap()
            self.averaged = True
            if self.batches:
                recompute_batchnorm(self.model, self.batches)

    def on_test_begin(self, logs=None):
        self._average()

    def on_epoch_end(self, epoch, logs=None):
        self._average()  # an epoch without validation

    def pair(self):
        """This callback and its ``RestoreRawWeights`` partner, to place before and after the
        callback that saves checkpoints."""
        return self, RestoreRawWeights(self)


class RestoreRawWeights(keras.callbacks.Callback):
    """Swaps the raw weights back into the model at the end of each epoch, after the checkpoint
    of the averaged ones is saved (see ``AveragedWeights``)."""

    def __init__(self, partner):
        super().__init__()
        self.partner = partner

    def on_epoch_end(self, epoch, logs=None):
        if self.partner.averaged:
            self.partner.swap()
            self.partner.averaged = False
