"""Segmentation metrics from one streaming confusion matrix.

``ConfusionMatrix`` is a Keras metric that accumulates a ``[C, C]`` matrix (rows = truth, columns =
prediction), skipping pixels labelled ``ignore_index``. Its ``result()`` is a dict (``miou``,
``pixel_accuracy``) so that ``fit`` logs ``val_miou``; ``scores(matrix)`` turns a matrix into every
score in numpy.

Convention: a class that appears neither in the truth nor in the prediction has an undefined IoU
(0/0). It is reported as NaN per class and left out of every mean, so a model is neither rewarded
nor punished for classes that the evaluated images do not contain.
"""

import keras
import numpy as np
from keras import ops

from kseg import DEFAULT_IGNORE_INDEX
from kseg.errors import ConfigError


@keras.saving.register_keras_serializable(package="kseg")
class ConfusionMatrix(keras.metrics.Metric):
    """``aux_strides``: the strides of the auxiliary heads packed in the model's output (a
    training model with heads, ``kseg.losses.split_heads``); the main output alone is scored."""

    def __init__(self, num_classes, ignore_index=DEFAULT_IGNORE_INDEX, aux_strides=(),
                 name="confusion", **kwargs):
        heads = kwargs.pop("heads", 1)  # saved by an older kseg: 1, or heads on the channel axis
        if heads != 1:
            raise ConfigError(f"a metric of {heads} predictions packed on the channel axis by an "
                             "older kseg: train it again")
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.aux_strides = [int(s) for s in aux_strides]
        self.matrix = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype="float32",
            name="matrix",
            aggregation="sum",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        n = self.num_classes
        # labels packed with a teacher's probabilities; predictions with auxiliary heads'
        from kseg.losses import split_heads, split_targets

        y_pred = split_heads(y_pred, self.aux_strides)[0]
        y_true = ops.reshape(ops.cast(split_targets(y_true)[0], "int32"), (-1,))
        if y_pred.shape[-1] == 1 and n == 2:  # single sigmoid output for a binary task
            pred = ops.cast(ops.reshape(y_pred, (-1,)) > 0, "int32")
        else:
            pred = ops.reshape(ops.argmax(y_pred, axis=-1), (-1,))
            pred = ops.cast(pred, "int32")
        valid = ops.logical_and(
            ops.not_equal(y_true, self.ignore_index),
            ops.logical_and(y_true >= 0, y_true < n),
        )
        index = ops.where(valid, y_true * n + pred, ops.zeros_like(y_true))
        # segment_sum with a static segment count traces under jit on every backend (bincount
        # does not under JAX)
        counts = ops.segment_sum(ops.cast(valid, "float32"), index, num_segments=n * n)
        self.matrix.assign_add(ops.reshape(counts, (n, n)))

    def result(self):
        m = ops.convert_to_tensor(self.matrix)
        tp = ops.diagonal(m)
        truth = ops.sum(m, axis=1)
        pred = ops.sum(m, axis=0)
        union = truth + pred - tp
        present = ops.cast(union > 0, "float32")
        iou = tp / ops.maximum(union, 1.0)
        miou = ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)
        acc = ops.sum(tp) / ops.maximum(ops.sum(m), 1.0)
        return {"miou": miou, "pixel_accuracy": acc}

    def reset_state(self):
        self.matrix.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "aux_strides": self.aux_strides,
        }


def confusion_matrix(y_true, y_pred_labels, num_classes, ignore_index=DEFAULT_IGNORE_INDEX):
    """numpy confusion matrix (int64, rows = truth) from integer label maps of equal shape."""
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred_labels).reshape(-1).astype(np.int64)
    keep = (t != ignore_index) & (t >= 0) & (t < num_classes)
    return np.bincount(t[keep] * num_classes + p[keep], minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def scores(matrix):
    """All scores of a ``[C, C]`` confusion matrix (rows = truth, columns = prediction).

    Returns ``pixel_accuracy``, ``mean_accuracy``, ``iou`` (list, NaN for an absent class), ``miou``,
    ``fwiou``, ``dice`` (list), ``mean_dice``. Means skip classes absent from truth and prediction.
    """
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    truth = m.sum(axis=1)
    pred = m.sum(axis=0)
    total = m.sum()
    union = truth + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        dice = np.where(truth + pred > 0, 2 * tp / (truth + pred), np.nan)
        class_acc = np.where(truth > 0, tp / truth, np.nan)

    def nanmean(v):
        v = v[~np.isnan(v)]
        return float(v.mean()) if v.size else float("nan")

    freq = truth / total if total > 0 else np.zeros_like(truth)
    present = ~np.isnan(iou)
    return {
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_accuracy": nanmean(class_acc),
        "iou": [float(v) for v in iou],
        "miou": nanmean(iou),
        "fwiou": float(np.sum(freq[present] * iou[present])) if total > 0 else float("nan"),
        "dice": [float(v) for v in dice],
        "mean_dice": nanmean(dice),
    }
