"""Segmentation losses as Keras ``Loss`` objects with ``get_config``.

Labels are sparse ``[B, H, W]`` class indices; predictions are ``[B, H, W, C]`` logits (or
probabilities with ``from_logits=False``). Pixels equal to ``ignore_index`` contribute nothing to the
loss or its gradient. Losses are computed in float32 whatever the model's compute dtype.

``get(spec, **options)`` builds a loss from a CLI-style name.
"""

import keras
from keras import ops

from kseg import DEFAULT_IGNORE_INDEX

_EPS = 1e-7


def _valid_mask_and_labels(y_true, ignore_index):
    """(labels with ignored pixels replaced by 0, float mask of valid pixels); both [B, H, W]."""
    y_true = ops.cast(y_true, "int32")
    if len(y_true.shape) == 4:  # accept [B, H, W, 1]
        y_true = ops.squeeze(y_true, axis=-1)
    valid = ops.not_equal(y_true, ignore_index)
    labels = ops.where(valid, y_true, ops.zeros_like(y_true))
    return labels, ops.cast(valid, "float32")


@keras.saving.register_keras_serializable(package="kseg")
class SparseCrossEntropy(keras.losses.Loss):
    """Per-pixel softmax cross-entropy averaged over the pixels that are not ``ignore_index``.

    With ``class_weights`` each pixel's term is weighted by the weight of its true class and the sum is
    divided by the sum of the weights (a weighted mean), as in SegNet's median-frequency balancing.
    """

    def __init__(
        self,
        ignore_index=DEFAULT_IGNORE_INDEX,
        from_logits=True,
        class_weights=None,
        name="sparse_cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)
        self.from_logits = bool(from_logits)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        labels, valid = _valid_mask_and_labels(y_true, self.ignore_index)
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            log_probs = ops.log(ops.clip(y_pred, _EPS, 1.0))
        onehot = ops.one_hot(labels, y_pred.shape[-1], dtype="float32")
        nll = -ops.sum(onehot * log_probs, axis=-1)
        weights = valid
        if self.class_weights is not None:
            cw = ops.convert_to_tensor(self.class_weights, dtype="float32")
            weights = weights * ops.take(cw, labels)
        return ops.sum(nll * weights) / ops.maximum(ops.sum(weights), _EPS)

    def get_config(self):
        return {
            **super().get_config(),
            "ignore_index": self.ignore_index,
            "from_logits": self.from_logits,
            "class_weights": self.class_weights,
        }


_LOSSES = {"ce": SparseCrossEntropy}


def names():
    return sorted(_LOSSES)


def get(spec="ce", **options):
    """Build a loss from its CLI name, e.g. ``get("ce", ignore_index=255, class_weights=[...])``."""
    if isinstance(spec, keras.losses.Loss):
        return spec
    try:
        cls = _LOSSES[spec]
    except KeyError:
        raise ValueError(f"unknown loss {spec!r}; available: {', '.join(names())}") from None
    return cls(**options)
