"""Model registry: ``kseg.models.build(name, num_classes=..., input_shape=..., **options)``.

Every model takes uint8 RGB images ``[B, H, W, 3]`` (normalisation is inside) and returns float32
per-pixel class logits ``[B, H, W, num_classes]``.
"""

from kseg.models import auxiliary
from kseg.models import deeplab, fastscnn, fcn, unet  # noqa: F401  (register the families)
from kseg.models.layers import CropToReference, PadToMultiple, Preprocess
from kseg.models.registry import (ModelConfigError, auxiliary_taps, build, is_mixed_precision,
                                  names, options, rebuild, register)


def load_model(path, compile=True, training=False):
    """Load a kseg ``.keras`` file (registers kseg's layers, losses and metrics first); a
    missing or damaged file is an ``InputError`` that says so. A training checkpoint with
    auxiliary heads (``kseg.models.auxiliary``) loads as the model to predict with, its main
    output alone (then uncompiled); ``training=True`` loads it as saved, heads and all (what a
    resumed run trains on)."""
    import keras

    from kseg.errors import ConfigError, InputError
    from kseg.files import checkpoint_problem

    problem = checkpoint_problem(path)
    if problem is not None:
        raise InputError(f"{path}: cannot load the model: {problem}")

    from kseg import losses, metrics  # noqa: F401  (register serializable classes)
    from kseg.train import schedules  # noqa: F401

    try:
        model = keras.models.load_model(path, compile=compile)
    except ConfigError as exc:  # a loss or metric kseg no longer builds (an older kseg's heads)
        if training:
            raise InputError(f"{path}: cannot train from this checkpoint: {exc}") from None
        model = keras.models.load_model(path, compile=False)  # to predict with: not compiled
    return model if training else auxiliary.inference_model(model)


__all__ = [
    "load_model",
    "auxiliary",
    "auxiliary_taps",
    "build",
    "rebuild",
    "is_mixed_precision",
    "names",
    "options",
    "register",
    "ModelConfigError",
    "Preprocess",
    "PadToMultiple",
    "CropToReference",
]
