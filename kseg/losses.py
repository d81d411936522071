"""Segmentation losses as Keras ``Loss`` objects with ``get_config``.

Labels are sparse ``[B, H, W]`` class indices; predictions are ``[B, H, W, C]`` logits (or
probabilities with ``from_logits=False``). A single-channel prediction ``[B, H, W, 1]`` is a binary
task's sigmoid output for class 1 (e.g. ISBI membranes): every loss here accepts it, treating it as
the two-class softmax of logits ``[0, z]`` (whose class-1 probability is exactly ``sigmoid(z)``).

Pixels equal to ``ignore_index`` contribute nothing to the loss or its gradient. Losses are computed
in float32 whatever the model's compute dtype (mixed precision), in log space where it matters, so
gradients stay finite for extreme logits.

``get(spec, **options)`` builds a loss from a CLI-style name: ``ce``, ``focal``, ``dice``,
``tversky``, ``lovasz``, or a sum such as ``focal+dice`` (weights via ``loss_weights``).
"""

import inspect
import math

import keras
from keras import ops

from kseg import DEFAULT_IGNORE_INDEX
from kseg.errors import ConfigError

_EPS = 1e-7


def split_targets(y_true):
    """(labels [B, H, W], teacher probabilities [B, H, W, C] or None) of a training target:
    labels ``[B, H, W]`` or ``[B, H, W, 1]``, or labels packed with a teacher's probabilities
    as ``[B, H, W, 1 + C]`` (distillation, ``kseg.data.teacher.pack``)."""
    if len(y_true.shape) == 4:
        if y_true.shape[-1] == 1:
            return ops.squeeze(y_true, axis=-1), None
        return y_true[..., 0], y_true[..., 1:]
    return y_true, None


def head_size(size, stride):
    """The grid an auxiliary head of ``stride`` predicts on an image of ``size`` (H, W):
    ceil(H / stride) x ceil(W / stride), what stride-2 convolutions with "same" padding give.
    Sizes may be ints or traced scalars (a model built for any input size)."""
    return tuple(-(-n // int(stride)) for n in size)


def main_height(rows, strides):
    """The main prediction's height H in a packed prediction of ``rows`` rows:
    ``rows = H + sum(ceil(H / s))`` (``split_heads``), solved for H."""
    guess = int(rows / (1 + sum(1 / int(s) for s in strides)))
    for h in range(max(guess - len(strides) - 1, 1), rows + 1):
        if h + sum(head_size((h,), s)[0] for s in strides) == rows:
            return h
    raise ValueError(f"a prediction of {rows} rows cannot hold a main output and auxiliary "
                     f"heads of strides {list(strides)}")


def split_heads(y_pred, strides=()):
    """The predictions a training model's output packs (``kseg.models.auxiliary``): the main
    one ``[B, H, W, C]`` first, then per auxiliary head of stride s its own
    ``[B, ceil(H/s), ceil(W/s), C]`` logits. They are packed as rows under the main grid, each
    head padded on the right to W, so that the training model keeps one 4-D output and every
    head is scored at its own resolution. Tensors or numpy arrays of static height and width."""
    strides = tuple(int(s) for s in strides)
    if not strides:
        return [y_pred]
    rows, width = y_pred.shape[1], y_pred.shape[2]
    if rows is None or width is None:
        raise ValueError("split_heads needs a prediction of static height and width")
    height = main_height(rows, strides)
    parts, top = [y_pred[:, :height]], height
    for s in strides:
        h, w = head_size((height, width), s)
        parts.append(y_pred[:, top:top + h, :w])
        top += h
    return parts


def head_labels(labels, stride):
    """Labels ``[B, H, W]`` read at the centre of each cell of a stride-``stride`` grid
    (``head_size``): the targets an auxiliary head is scored on at its own resolution."""
    size = labels.shape[1:3]
    if None in size:
        raise ValueError("head_labels needs labels of static height and width")
    rows, cols = (ops.minimum(ops.arange(n) * int(stride) + int(stride) // 2, full - 1)
                  for n, full in zip(head_size(size, stride), size))
    return ops.take(ops.take(labels, rows, axis=1), cols, axis=2)


def _labels_and_mask(y_true, ignore_index):
    """(labels with ignored pixels replaced by 0, float32 mask of valid pixels); both [B, H, W]."""
    y_true = ops.cast(split_targets(y_true)[0], "int32")
    valid = ops.not_equal(y_true, ignore_index)
    labels = ops.where(valid, y_true, ops.zeros_like(y_true))
    return labels, ops.cast(valid, "float32")


def _log_probs(y_pred, from_logits):
    """float32 class log-probabilities [B, H, W, C]; a single channel becomes two classes."""
    y_pred = ops.cast(y_pred, "float32")
    if y_pred.shape[-1] == 1:
        if from_logits:
            y_pred = ops.concatenate([ops.zeros_like(y_pred), y_pred], axis=-1)
        else:
            y_pred = ops.concatenate([1.0 - y_pred, y_pred], axis=-1)
    if from_logits:
        return ops.log_softmax(y_pred, axis=-1)
    return ops.log(ops.clip(y_pred, _EPS, 1.0))


def _per_class(values, num_classes, name):
    """A per-class list (or a scalar for every class) as a float32 tensor [C]."""
    if values is None:
        return None
    if isinstance(values, (int, float)):
        values = [float(values)] * num_classes
    if len(values) != num_classes:
        raise ConfigError(f"{name} has {len(values)} values but the model predicts {num_classes} classes")
    return ops.convert_to_tensor([float(v) for v in values], dtype="float32")


class _SegLoss(keras.losses.Loss):
    """Shared options: ``ignore_index`` and ``from_logits``."""

    def __init__(self, ignore_index=DEFAULT_IGNORE_INDEX, from_logits=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="kseg")
class SparseCrossEntropy(_SegLoss):
    """Per-pixel softmax cross-entropy averaged over the pixels that are not ``ignore_index``.

    With ``class_weights`` each pixel's term is weighted by the weight of its true class and the sum
    is divided by the sum of the weights (a weighted mean), as in SegNet's median-frequency
    balancing.
    """

    def __init__(self, class_weights=None, name="ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        log_probs = _log_probs(y_pred, self.from_logits)
        labels, valid = _labels_and_mask(y_true, self.ignore_index)
        num_classes = log_probs.shape[-1]
        nll = -ops.sum(ops.one_hot(labels, num_classes, dtype="float32") * log_probs, axis=-1)
        weights = valid
        cw = _per_class(self.class_weights, num_classes, "class_weights")
        if cw is not None:
            weights = weights * ops.take(cw, labels)
        return ops.sum(nll * weights) / ops.maximum(ops.sum(weights), _EPS)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="kseg")
class OhemCrossEntropy(_SegLoss):
    """Cross-entropy over the hard pixels only: online hard example mining (Shrivastava et al.,
    2016), in the form BiSeNet and Fast-SCNN's public recipes train with. A pixel is hard when its
    true class gets a probability below ``threshold``; at least ``min_kept`` (a fraction of the
    batch's pixels) of the highest-loss valid pixels are always kept, so an easy batch still
    trains. ``class_weights`` weight the kept pixels as in ``SparseCrossEntropy``."""

    def __init__(self, threshold=0.7, min_kept=1 / 16, class_weights=None, name="ohem", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0 < float(threshold) <= 1 or not 0 < float(min_kept) <= 1:
            raise ConfigError(f"OHEM needs threshold and min_kept in (0, 1], got {threshold} "
                              f"and {min_kept}")
        self.threshold, self.min_kept = float(threshold), float(min_kept)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        log_probs = _log_probs(y_pred, self.from_logits)
        labels, valid = _labels_and_mask(y_true, self.ignore_index)
        num_classes = log_probs.shape[-1]
        nll = -ops.sum(ops.one_hot(labels, num_classes, dtype="float32") * log_probs, axis=-1)
        flat = ops.reshape(ops.where(valid > 0, nll, -ops.ones_like(nll)), (-1,))  # ignored: last
        n = ops.shape(flat)[0]
        keep = ops.maximum(ops.cast(ops.cast(n, "float32") * self.min_kept, "int32"), 1)
        kth = ops.take(ops.sort(ops.stop_gradient(flat)), n - keep)  # the keep-th largest loss
        # p(true) < threshold  <=>  nll > -log(threshold)
        hard = ops.logical_or(nll > -math.log(self.threshold), nll >= kth)
        weights = valid * ops.cast(hard, "float32")
        cw = _per_class(self.class_weights, num_classes, "class_weights")
        if cw is not None:
            weights = weights * ops.take(cw, labels)
        weights = ops.stop_gradient(weights)
        return ops.sum(nll * weights) / ops.maximum(ops.sum(weights), _EPS)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "min_kept": self.min_kept,
                "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="kseg")
class FocalLoss(_SegLoss):
    """Focal loss (Lin et al., 2017), averaged over valid pixels.

    ``mode="softmax"``: FL = -sum_i alpha_i (1 - s_i)^gamma t_i log s_i over the softmax scores s;
    with gamma = 0 and alpha = 1 it is the cross-entropy.
    ``mode="binary"``: one sigmoid per class, one-vs-rest, summed over both outcomes:
    -sum_c [alpha_c t_c (1 - s_c)^gamma log s_c + (1 - t_c) s_c^gamma log(1 - s_c)];
    with gamma = 0 and alpha = 1 it is the binary cross-entropy summed over classes. A single-channel
    prediction uses that channel alone (class 1 vs the rest).
    ``alpha``: None (1 for every class), a number, or a per-class list (e.g. class weights).
    """

    def __init__(self, gamma=2.0, alpha=None, mode="softmax", name="focal", **kwargs):
        super().__init__(name=name, **kwargs)
        if mode not in ("softmax", "binary"):
            raise ConfigError(f"focal loss mode must be 'softmax' or 'binary', got {mode!r}")
        if float(gamma) < 0:
            raise ConfigError(f"focal loss gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha = alpha if alpha is None or isinstance(alpha, (int, float)) else [float(a) for a in alpha]
        self.mode = mode

    def _modulate(self, p):
        return ops.ones_like(p) if self.gamma == 0 else ops.power(ops.maximum(p, 0.0), self.gamma)

    def call(self, y_true, y_pred):
        labels, valid = _labels_and_mask(y_true, self.ignore_index)
        if self.mode == "softmax":
            log_probs = _log_probs(y_pred, self.from_logits)
            num_classes = log_probs.shape[-1]
            onehot = ops.one_hot(labels, num_classes, dtype="float32")
            log_pt = ops.sum(onehot * log_probs, axis=-1)
            term = -self._modulate(1.0 - ops.exp(log_pt)) * log_pt
            alpha = _per_class(self.alpha, num_classes, "focal alpha")
            if alpha is not None:
                term = term * ops.take(alpha, labels)
        else:
            z = ops.cast(y_pred, "float32")
            num_classes = z.shape[-1]
            if num_classes == 1:
                target = ops.cast(ops.equal(labels, 1), "float32")[..., None]
            else:
                target = ops.one_hot(labels, num_classes, dtype="float32")
            if self.from_logits:
                log_p, log_q = ops.log_sigmoid(z), ops.log_sigmoid(-z)
            else:
                log_p, log_q = ops.log(ops.clip(z, _EPS, 1.0)), ops.log(ops.clip(1.0 - z, _EPS, 1.0))
            p = ops.exp(log_p)
            alpha = _per_class(self.alpha, num_classes, "focal alpha")
            pos = target * self._modulate(1.0 - p) * log_p
            if alpha is not None:
                pos = pos * alpha
            neg = (1.0 - target) * self._modulate(p) * log_q
            term = -ops.sum(pos + neg, axis=-1)
        return ops.sum(term * valid) / ops.maximum(ops.sum(valid), _EPS)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha, "mode": self.mode}


@keras.saving.register_keras_serializable(package="kseg")
class TverskyLoss(_SegLoss):
    """1 - Tversky index per class, averaged over the classes present in the batch's labels.

    TI_c = (TP_c + smooth) / (TP_c + alpha FP_c + beta FN_c + smooth) with soft (probability)
    counts over the batch's valid pixels. alpha = beta = 0.5 is the soft Dice loss; beta > alpha
    penalises missed pixels more (Salehi et al., 2017).
    """

    def __init__(self, alpha=0.5, beta=0.5, smooth=1.0, name="tversky", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.beta, self.smooth = float(alpha), float(beta), float(smooth)

    def call(self, y_true, y_pred):
        probs = ops.exp(_log_probs(y_pred, self.from_logits))
        labels, valid = _labels_and_mask(y_true, self.ignore_index)
        num_classes = probs.shape[-1]
        target = ops.one_hot(labels, num_classes, dtype="float32") * valid[..., None]
        probs = probs * valid[..., None]
        axes = tuple(range(len(probs.shape) - 1))
        tp = ops.sum(probs * target, axis=axes)
        fp = ops.sum(probs * (1.0 - target), axis=axes)
        fn = ops.sum((1.0 - probs) * target, axis=axes)
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        present = ops.cast(ops.sum(target, axis=axes) > 0, "float32")
        return ops.sum((1.0 - index) * present) / ops.maximum(ops.sum(present), 1.0)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta, "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="kseg")
class DiceLoss(TverskyLoss):
    """Soft Dice loss: 1 - (2 sum p t + smooth) / (sum p + sum t + smooth), per class, averaged
    over the classes present in the batch's labels (the Tversky loss with alpha = beta = 0.5)."""

    def __init__(self, smooth=1.0, name="dice", **kwargs):
        kwargs.pop("alpha", None)
        kwargs.pop("beta", None)
        super().__init__(alpha=0.5, beta=0.5, smooth=smooth, name=name, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("alpha")
        config.pop("beta")
        return config


@keras.saving.register_keras_serializable(package="kseg")
class LovaszSoftmaxLoss(_SegLoss):
    """Lovasz-softmax loss (Berman, Rannen Triki and Blaschko, CVPR 2018): a convex surrogate of
    1 - IoU per class, averaged over the classes present in the labels.

    For class c, each valid pixel's error is m_i = |[y_i = c] - p_i(c)|. With the errors sorted in
    decreasing order, the loss is sum_k m_(k) (J_k - J_(k-1)), where J_k is the Jaccard loss
    |M| / |F_c u M| of mispredicting the k largest-error pixels M (F_c: the pixels labelled c).
    This is the Lovasz extension of the Jaccard loss: on hard (one-hot) predictions it equals
    1 - IoU_c exactly, so minimising it targets the IoU a model is scored on, where cross-entropy
    and Dice target per-pixel likelihoods and soft overlaps.

    ``per_image`` (library only; ``--loss lovasz`` uses the default): one loss per image, averaged
    over the batch (IoU as scored image by image); otherwise one loss over all the batch's pixels
    (the batch's IoU, closer to the dataset-wide IoU ``kseg evaluate`` reports). Ignored pixels get
    error 0 and no label, so they contribute nothing to the loss or its gradient. The paper
    fine-tunes a cross-entropy model with it; ``ce+lovasz`` trains with both. Computed in float32:
    exact for batches of up to about 2**24 pixels.
    """

    def __init__(self, per_image=False, name="lovasz", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_image = bool(per_image)

    @staticmethod
    def _flat_loss(errors, targets):
        """Loss of flat [N, C] errors and {0, 1} targets: mean over classes present."""
        order = ops.flip(ops.argsort(ops.stop_gradient(errors), axis=0), axis=0)  # decreasing
        errors = ops.take_along_axis(errors, order, axis=0)
        targets = ops.take_along_axis(targets, order, axis=0)
        total = ops.sum(targets, axis=0)
        intersection = total - ops.cumsum(targets, axis=0)
        union = total + ops.cumsum(1.0 - targets, axis=0)
        jaccard = 1.0 - intersection / ops.maximum(union, _EPS)  # J_k, k = 1..N
        steps = ops.concatenate([jaccard[:1], jaccard[1:] - jaccard[:-1]], axis=0)
        per_class = ops.sum(errors * ops.stop_gradient(steps), axis=0)
        present = ops.cast(total > 0, "float32")
        return ops.sum(per_class * present) / ops.maximum(ops.sum(present), 1.0)

    def call(self, y_true, y_pred):
        probs = ops.exp(_log_probs(y_pred, self.from_logits))
        labels, valid = _labels_and_mask(y_true, self.ignore_index)
        num_classes = probs.shape[-1]
        targets = ops.one_hot(labels, num_classes, dtype="float32") * valid[..., None]
        errors = ops.abs(targets - probs) * valid[..., None]
        if not self.per_image:
            return self._flat_loss(ops.reshape(errors, (-1, num_classes)),
                                   ops.reshape(targets, (-1, num_classes)))
        batch = ops.shape(errors)[0]
        errors = ops.reshape(errors, (batch, -1, num_classes))
        targets = ops.reshape(targets, (batch, -1, num_classes))
        per_image = ops.vectorized_map(lambda pair: self._flat_loss(*pair), (errors, targets))
        return ops.mean(per_image)

    def get_config(self):
        return {**super().get_config(), "per_image": self.per_image}


@keras.saving.register_keras_serializable(package="kseg")
class CombinedLoss(keras.losses.Loss):
    """Weighted sum of losses, e.g. focal + Dice."""

    def __init__(self, losses, weights=None, name=None, **kwargs):
        self.losses = [keras.losses.deserialize(l) if isinstance(l, dict) else l for l in losses]
        weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.losses):
            raise ConfigError(f"{len(weights)} loss weights given for {len(self.losses)} losses")
        self.weights = weights
        super().__init__(name=name or "_plus_".join(l.name for l in self.losses), **kwargs)

    def call(self, y_true, y_pred):
        total = 0.0
        for w, loss in zip(self.weights, self.losses):
            total = total + w * loss.call(y_true, y_pred)
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "losses": [keras.losses.serialize(l) for l in self.losses],
            "weights": self.weights,
        }


@keras.saving.register_keras_serializable(package="kseg")
class Distillation(keras.losses.Loss):
    """``loss`` on the labels plus ``weight`` x the pixel-wise KL divergence from a teacher's
    class probabilities to the student's (Hinton et al., 2015), both softened by
    ``temperature`` (T: ``p ** (1 / T)``, renormalised; the KL term is scaled by T**2 so its
    gradients keep their size), averaged over the pixels that are not ``ignore_index``.

    The teacher's probabilities come packed with the labels (``split_targets``); a target of
    labels alone (validation) gives ``loss`` alone. A single-channel (sigmoid) student is read
    as the two-class softmax of ``[0, z]``."""

    def __init__(self, loss, weight=1.0, temperature=1.0, ignore_index=DEFAULT_IGNORE_INDEX,
                 name=None, **kwargs):
        self.loss = keras.losses.deserialize(loss) if isinstance(loss, dict) else loss
        if float(weight) < 0 or float(temperature) <= 0:
            raise ConfigError(f"distillation needs weight >= 0 and temperature > 0, got "
                              f"{weight} and {temperature}")
        self.weight, self.temperature = float(weight), float(temperature)
        self.ignore_index = int(ignore_index)
        super().__init__(name=name or f"{self.loss.name}_distilled", **kwargs)

    def call(self, y_true, y_pred):
        base = self.loss.call(y_true, y_pred)
        labels, teacher = split_targets(y_true)
        if teacher is None or self.weight == 0:
            return base
        t = self.temperature
        log_student = _log_probs(ops.cast(y_pred, "float32") / t, from_logits=True)
        log_teacher = ops.log(ops.clip(ops.cast(teacher, "float32"), _EPS, 1.0)) / t
        log_teacher = log_teacher - ops.logsumexp(log_teacher, axis=-1, keepdims=True)
        kl = ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)
        valid = ops.cast(ops.not_equal(ops.cast(labels, "int32"), self.ignore_index), "float32")
        kl = ops.sum(kl * valid) / ops.maximum(ops.sum(valid), _EPS)
        return base + self.weight * t * t * kl

    def get_config(self):
        return {**super().get_config(), "loss": keras.losses.serialize(self.loss),
                "weight": self.weight, "temperature": self.temperature,
                "ignore_index": self.ignore_index}


@keras.saving.register_keras_serializable(package="kseg")
class DeepSupervision(keras.losses.Loss):
    """``loss`` on the main prediction plus, per auxiliary head of stride s, its weight x
    ``aux_loss`` on that head's logits at their own resolution against the labels at its cells'
    centres (``split_heads``, ``head_labels``; Fast-SCNN's paper: cross-entropy, weight 0.4).
    ``loss`` may be a ``Distillation``: the teacher then teaches the main output alone."""

    def __init__(self, loss, aux_loss, weights, strides=None, name=None, **kwargs):
        self.loss = keras.losses.deserialize(loss) if isinstance(loss, dict) else loss
        self.aux_loss = (keras.losses.deserialize(aux_loss) if isinstance(aux_loss, dict)
                         else aux_loss)
        if strides is None:  # saved by an older kseg: no strides, heads on the channel axis
            raise ConfigError("deep supervision of heads packed on the channel axis by an older "
                              "kseg: train it again")
        self.weights = [float(w) for w in weights]
        self.strides = [int(s) for s in strides]
        if not self.weights or min(self.weights) < 0:
            raise ConfigError(f"deep supervision needs one weight >= 0 per auxiliary head, got "
                              f"{weights}")
        if len(self.strides) != len(self.weights) or min(self.strides) < 1:
            raise ConfigError(f"deep supervision needs one stride >= 1 per weight, got strides "
                              f"{strides} for weights {weights}")
        super().__init__(name=name or f"{self.loss.name}_aux", **kwargs)

    def call(self, y_true, y_pred):
        main, *aux = split_heads(y_pred, self.strides)
        total = self.loss.call(y_true, main)
        labels = split_targets(y_true)[0]
        for w, s, pred in zip(self.weights, self.strides, aux):
            total = total + w * self.aux_loss.call(head_labels(labels, s), pred)
        return total

    def get_config(self):
        return {**super().get_config(), "loss": keras.losses.serialize(self.loss),
                "aux_loss": keras.losses.serialize(self.aux_loss), "weights": self.weights,
                "strides": self.strides}


_LOSSES = {"ce": SparseCrossEntropy, "ohem": OhemCrossEntropy, "focal": FocalLoss, "dice": DiceLoss, "tversky": TverskyLoss,
           "lovasz": LovaszSoftmaxLoss}
# CLI-level option names -> constructor argument, per loss
_ALIASES = {
    "focal": {"focal_gamma": "gamma", "focal_alpha": "alpha", "focal_mode": "mode",
              "class_weights": "alpha"},
    "tversky": {"tversky_alpha": "alpha", "tversky_beta": "beta"},
}


def names():
    return sorted(_LOSSES)


def _accepted(cls):
    """The constructor arguments of a loss class and its kseg bases."""
    accepted = set()
    for klass in cls.__mro__:
        if klass is keras.losses.Loss:
            break
        accepted |= set(inspect.signature(klass.__init__).parameters) - {"self", "kwargs", "name"}
    return accepted


def _parts(spec):
    return [p.strip() for p in str(spec).split("+") if p.strip()]


def uses_class_weights(spec):
    """Whether any part of a loss spec (``"ce+dice"``) takes the ``class_weights`` option."""
    return any(name in _LOSSES and _ALIASES.get(name, {}).get("class_weights", "class_weights")
               in _accepted(_LOSSES[name]) for name in _parts(spec))


def _build_one(name, options):
    try:
        cls = _LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(names())}") from None
    accepted = _accepted(cls)
    kwargs = {}
    for key, value in options.items():
        target = _ALIASES.get(name, {}).get(key, key)
        if target in accepted and value is not None and target not in kwargs:
            kwargs[target] = value
    # an explicit focal_alpha wins over class weights
    if name == "focal" and options.get("focal_alpha") is not None:
        kwargs["alpha"] = options["focal_alpha"]
    return cls(**kwargs)


def get(spec="ce", loss_weights=None, **options):
    """Build a loss from its CLI name: ``get("focal+dice", loss_weights=[1, 1], focal_gamma=2)``.

    Options a loss does not take are ignored by it (``class_weights`` goes to ``ce`` and becomes
    focal's ``alpha``); ``ignore_index`` and ``from_logits`` go to every part.
    """
    if isinstance(spec, keras.losses.Loss):
        return spec
    parts = _parts(spec)
    if not parts:
        raise ConfigError(f"empty loss spec {spec!r}")
    built = [_build_one(p, options) for p in parts]
    if len(built) == 1:
        if loss_weights not in (None, [1], [1.0]):
            raise ConfigError(f"loss weights {loss_weights} given for the single loss {spec!r}")
        return built[0]
    return CombinedLoss(built, loss_weights)
