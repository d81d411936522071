"""Fast-SCNN (Poudel et al., 2019): a real-time two-branch network built to train from scratch
and to run on phones.

- **Learning to downsample**: a 3x3 conv and two depthwise-separable convs, each of stride 2, bring
  the image to 1/8 resolution (32, 48, 64 channels). Its output is shared by both branches.
- **Global feature extractor**: MobileNetV2 inverted-residual bottlenecks (expansion 6; 64, 96 and
  128 channels, three blocks each, strides 2, 2, 1) take the shared features to 1/32, then a
  pyramid pooling module (PSPNet; average pooling to 1x1, 2x2, 3x3 and 6x6 grids, each reduced by a
  1x1 conv, upsampled and concatenated with its input) adds global context.
- **Feature fusion**: the 1/32 branch is upsampled 4x, filtered by a 3x3 depthwise conv of
  dilation 4 and projected by a 1x1 conv; the 1/8 branch is projected by a 1x1 conv; the two are
  added and passed through ReLU.
- **Classifier**: two depthwise-separable convs, dropout, a 1x1 conv to class logits and bilinear
  upsampling 8x to the input size.

The paper trains with auxiliary losses on the two branches (weight 0.4): ``kseg train
--aux-loss-weight 0.4`` adds a head on the learning-to-downsample output (1/8) and one on the
pyramid pooling output (1/32) for training only (``kseg.models.auxiliary``).
``width`` scales every channel count (1.0 is the paper's 1.1 M-parameter network).
"""

import keras

from kseg.models.layers import (BN_MOMENTUM, AdaptiveAveragePool, BilinearUpsample, CropToReference,
                                PadToMultiple, Preprocess, ResizeToReference, conv_bn,
                                separable_conv_bn)
from kseg.models.registry import ModelConfigError, register

# (expansion t, output channels c, repeats n, first stride s) of the global feature extractor
BOTTLENECKS = ((6, 64, 3, 2), (6, 96, 3, 2), (6, 128, 3, 1))
DOWNSAMPLE_CHANNELS = (32, 48, 64)
FUSION_CHANNELS = 128


def _channels(c, width):
    return max(8, int(round(c * width / 8)) * 8)


def bottleneck(x, filters, expansion, stride, name):
    """MobileNetV2 inverted residual: 1x1 expansion, 3x3 depthwise (stride), linear 1x1
    projection; identity shortcut when the shape is kept."""
    inputs = x
    x = conv_bn(x, expansion * x.shape[-1], f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                     name=f"{name}_depthwise")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_depthwise_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
    x = conv_bn(x, filters, f"{name}_project", activation=None)
    if stride == 1 and inputs.shape[-1] == filters:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def pyramid_pooling(x, bins, name="ppm"):
    """PSPNet's pyramid pooling: per bin size, adaptive average pooling, a 1x1 conv to a quarter
    of the channels and bilinear upsampling back; concatenated with the input, then fused by a
    1x1 conv to the input's channel count."""
    channels = x.shape[-1]
    branches = [x]
    for b in bins:
        y = AdaptiveAveragePool(b, name=f"{name}_pool{b}")(x)
        y = conv_bn(y, max(1, channels // 4), f"{name}_pool{b}_1x1")
        branches.append(ResizeToReference(name=f"{name}_pool{b}_up")([y, x]))
    y = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn(y, channels, f"{name}_project")


# the paper's auxiliary losses: on the learning-to-downsample and global-feature-extractor outputs
AUXILIARY = {"downsample_dsconv2_pointwise_relu": 8, "ppm_project_relu": 32}


@register("fastscnn", auxiliary=AUXILIARY)
def build_fastscnn(
    *,
    num_classes: int,
    input_shape: tuple = (None, None, 3),
    width: float = 1.0,
    ppm_bins: tuple = (1, 2, 3, 6),
    fusion_dilation: int = 4,
    dropout: float = 0.1,
) -> keras.Model:
    """Fast-SCNN (Poudel et al. 2019): learning to downsample (a conv and two depthwise-separable
    convs to 1/8), a global feature extractor (MobileNetV2 bottlenecks to 1/32 and pyramid
    pooling), feature fusion of the two branches at 1/8, and a light classifier. Built for
    real-time use and for training from scratch. Any input size works (padded to a multiple of 32
    inside, logits cropped back).

    Args:
        width: channel multiplier of every stage (1.0: the paper's 32-48-64-96-128 channels).
        ppm_bins: grid sizes of the pyramid pooling (adaptive average pooling to each grid).
        fusion_dilation: dilation of the depthwise convolution on the upsampled 1/32 branch in
            the feature fusion module.
        dropout: dropout rate before the classifier.

    Example::

        kseg.models.build("fastscnn", num_classes=11, input_shape=(360, 480, 3))
    """
    # 1. validate
    if not 0.25 <= float(width) <= 2.0:
        raise ModelConfigError(f"fastscnn: width must be in 0.25..2.0, got {width}")
    bins = tuple(int(b) for b in (ppm_bins if isinstance(ppm_bins, (list, tuple)) else [ppm_bins]))
    if not bins or min(bins) < 1:
        raise ModelConfigError(f"fastscnn: ppm_bins must be positive grid sizes, got {ppm_bins}")
    if int(fusion_dilation) < 1:
        raise ModelConfigError(f"fastscnn: fusion_dilation must be >= 1, got {fusion_dilation}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ModelConfigError(f"fastscnn: dropout must be in [0, 1), got {dropout}")
    width = float(width)

    # 2. wire
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = Preprocess(name="preprocess")(inputs)
    x = PadToMultiple(32, name="pad")(x)

    # learning to downsample (1/8)
    c1, c2, c3 = (_channels(c, width) for c in DOWNSAMPLE_CHANNELS)
    x = conv_bn(x, c1, "downsample_conv", kernel_size=3, strides=2)
    x = separable_conv_bn(x, c2, "downsample_dsconv1", strides=2)
    high = separable_conv_bn(x, c3, "downsample_dsconv2", strides=2)

    # global feature extractor (1/32) + pyramid pooling
    x = high
    for stage, (t, c, n, s) in enumerate(BOTTLENECKS):
        for i in range(n):
            x = bottleneck(x, _channels(c, width), t, s if i == 0 else 1, f"gfe{stage + 1}_{i + 1}")
    x = pyramid_pooling(x, bins)

    # feature fusion (1/8)
    fused = _channels(FUSION_CHANNELS, width)
    low = BilinearUpsample(4, name="fusion_upsample")(x)
    low = keras.layers.DepthwiseConv2D(3, dilation_rate=int(fusion_dilation), padding="same",
                                       use_bias=False, name="fusion_low_depthwise")(low)
    low = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="fusion_low_depthwise_bn")(low)
    low = keras.layers.ReLU(name="fusion_low_depthwise_relu")(low)
    low = conv_bn(low, fused, "fusion_low_project", activation=None)
    high = conv_bn(high, fused, "fusion_high_project", activation=None)
    x = keras.layers.Add(name="fusion_add")([low, high])
    x = keras.layers.ReLU(name="fusion_relu")(x)

    # classifier
    x = separable_conv_bn(x, fused, "classifier_dsconv1")
    x = separable_conv_bn(x, fused, "classifier_dsconv2")
    if dropout:
        x = keras.layers.Dropout(float(dropout), name="classifier_dropout")(x)
    logits = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    logits = BilinearUpsample(8, name="upsample", dtype="float32")(logits)
    logits = CropToReference(name="crop", dtype="float32")([logits, inputs])

    # 3. the model
    return keras.Model(inputs, logits, name="fastscnn")
