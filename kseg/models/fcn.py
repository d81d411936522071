"""Fully convolutional networks (Long, Shelhamer & Darrell, 2015).

The backbone's classifier is replaced by convolutions ("fc6"/"fc7" as a 3x3 and a 1x1 conv with
dropout), a 1x1 classifier scores every location at stride 32, and learned transposed convolutions
(initialised to bilinear interpolation, as in the paper) upsample the scores:

- ``fcn32s``: one 32x upsampling of the stride-32 scores;
- ``fcn16s``: 2x upsampling fused (summed) with scores from the stride-16 features, then 16x;
- ``fcn8s``: and once more with the stride-8 features, then 8x.
"""

import keras
import numpy as np

from kseg.models import backbones
from kseg.models.registry import ModelConfigError, register


def _bilinear_kernel(size, channels):
    """Weights [size, size, channels, channels] of a transposed conv that upsamples bilinearly."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    w = np.zeros((size, size, channels, channels), np.float32)
    for c in range(channels):
        w[:, :, c, c] = filt
    return w


def _upsample(x, num_classes, factor, name):
    """Learned upsampling by ``factor`` (kernel 2*factor), starting from bilinear weights."""
    layer = keras.layers.Conv2DTranspose(
        num_classes, 2 * factor, strides=factor, padding="same", use_bias=False, name=name,
        kernel_initializer=keras.initializers.Constant(_bilinear_kernel(2 * factor, num_classes)),
    )
    return layer(x)


def _build_fcn(variant, num_classes, input_shape, backbone, width, head_channels, dropout, weights):
    if head_channels < 1:
        raise ModelConfigError(f"{variant}: head_channels must be positive, got {head_channels}")
    if not 0.0 <= dropout < 1.0:
        raise ModelConfigError(f"{variant}: dropout must be in [0, 1), got {dropout}")
    backbones.get(backbone)  # fail early on an unknown name

    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    features = backbones.encode(inputs, backbone, 32, width, weights)

    # fc6 / fc7 as convolutions, then the classifier ("score_fr")
    h = keras.layers.Conv2D(head_channels, 3, padding="same", activation="relu", name="fc6")(features[32])
    h = keras.layers.Dropout(dropout, name="drop6")(h)
    h = keras.layers.Conv2D(head_channels, 1, activation="relu", name="fc7")(h)
    h = keras.layers.Dropout(dropout, name="drop7")(h)
    score = keras.layers.Conv2D(num_classes, 1, name="score_fr")(h)

    skips = {"fcn32s": [], "fcn16s": [16], "fcn8s": [16, 8]}[variant]
    for stride in skips:
        up = _upsample(score, num_classes, 2, f"upscore_to_{stride}")
        skip = keras.layers.Conv2D(num_classes, 1, kernel_initializer="zeros",
                                   name=f"score_stride{stride}")(features[stride])
        score = keras.layers.Add(name=f"fuse_stride{stride}")([up, skip])
    final = skips[-1] if skips else 32
    logits = _upsample(score, num_classes, final, "upscore_final")
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return backbones.finish(logits, inputs, variant, backbone, width, weights)


_SUMMARY = {
    "fcn32s": "FCN-32s (Long et al. 2015): stride-32 scores upsampled 32x by a learned "
              "transposed convolution.",
    "fcn16s": "FCN-16s (Long et al. 2015): stride-32 scores upsampled 2x and summed with "
              "scores of the stride-16 features, then upsampled 16x.",
    "fcn8s": "FCN-8s (Long et al. 2015): as FCN-16s, fused once more with the stride-8 "
             "features, then upsampled 8x.",
}


def _register(variant):
    @register(variant)
    def build(
        *,
        num_classes: int,
        input_shape: tuple = (None, None, 3),
        backbone: str = "resnet18",
        width: float = 1.0,
        head_channels: int = 512,
        dropout: float = 0.5,
        weights: str = None,
    ) -> keras.Model:
        return _build_fcn(variant, num_classes, input_shape, backbone, float(width),
                          int(head_channels), float(dropout), weights)

    build.__name__ = f"build_{variant}"
    build.__doc__ = f"""{_SUMMARY[variant]}

    Args:
        backbone: encoder, one of ``kseg.models.backbones.names()`` (mobilenetv2, resnet18,
            resnet50).
        width: channel multiplier of the backbone.
        head_channels: channels of the "fc6" (3x3) and "fc7" (1x1) convolutions (4096 in the
            paper's VGG net).
        dropout: dropout rate after fc6 and fc7.
        weights: ``imagenet`` to start the backbone from ImageNet weights, or None.

    Example::

        kseg.models.build("{variant}", num_classes=21, backbone="resnet18")
    """
    return build


build_fcn32s = _register("fcn32s")
build_fcn16s = _register("fcn16s")
build_fcn8s = _register("fcn8s")
