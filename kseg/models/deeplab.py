"""DeepLabv3 (Chen et al., 2017) and DeepLabv3+ (Chen et al., 2018).

DeepLabv3: an atrous backbone keeps features at ``output_stride`` 16 (or 8); Atrous Spatial
Pyramid Pooling (ASPP) runs a 1x1 branch, three 3x3 atrous branches (rates 6/12/18 at OS 16,
doubled at OS 8) and an image-pooling branch in parallel, concatenates them and projects with a
1x1 conv; a 1x1 classifier and bilinear upsampling give input-size logits.

DeepLabv3+: the same encoder with depthwise-separable atrous convolutions in ASPP, plus a decoder
that upsamples the ASPP output 4x, concatenates the stride-4 low-level features (reduced by a 1x1
conv to 48 channels), refines with two 3x3 separable convs and upsamples 4x to the input.

The output stride is a build option; the weights do not depend on it, so a model trained at OS 16
can be rebuilt at OS 8 and given the same weights (``kseg.models.rebuild``).
"""

import keras

from kseg.models import backbones
from kseg.models.layers import BilinearUpsample, TileToReference, conv_bn, separable_conv_bn
from kseg.models.registry import ModelConfigError, register


def aspp(x, channels, rates, separable, dropout, name="aspp"):
    """ASPP with a 1x1 branch, one 3x3 branch per atrous rate and an image-pooling branch."""
    branches = [conv_bn(x, channels, f"{name}_1x1")]
    for i, rate in enumerate(rates):
        if separable:
            branches.append(separable_conv_bn(x, channels, f"{name}_sep{i + 1}", dilation=rate))
        else:
            branches.append(conv_bn(x, channels, f"{name}_3x3_{i + 1}", kernel_size=3, dilation=rate))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn(pooled, channels, f"{name}_pool_1x1")
    branches.append(TileToReference(name=f"{name}_pool_tile")([pooled, x]))
    y = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    y = conv_bn(y, channels, f"{name}_project")
    return keras.layers.Dropout(dropout, name=f"{name}_dropout")(y) if dropout else y


def _validate(model, output_stride, aspp_channels, dropout):
    backbones.check_output_stride(model, output_stride)
    if aspp_channels < 1:
        raise ModelConfigError(f"{model}: aspp_channels must be positive, got {aspp_channels}")
    if not 0.0 <= dropout < 1.0:
        raise ModelConfigError(f"{model}: dropout must be in [0, 1), got {dropout}")


def _upsample(x, factor, name, dtype=None):
    """Bilinear upsampling by an integer factor (works for unknown sizes too)."""
    if factor == 1:
        return x
    return BilinearUpsample(factor, name=name, dtype=dtype)(x)


def _rates(output_stride):
    return tuple(r * 16 // output_stride for r in (6, 12, 18)) if output_stride < 32 else (3, 6, 9)


@register("deeplabv3")
def build_deeplabv3(
    *,
    num_classes: int,
    input_shape: tuple = (None, None, 3),
    backbone: str = "mobilenetv2",
    width: float = 1.0,
    output_stride: int = 16,
    aspp_channels: int = 256,
    dropout: float = 0.1,
    weights: str = None,
) -> keras.Model:
    """DeepLabv3 (Chen et al. 2017): backbone with atrous convolutions, atrous spatial pyramid
    pooling (ASPP: 1x1, three 3x3 at rates 6/12/18 scaled to the output stride, image pooling),
    a 1x1 classifier, logits upsampled bilinearly to the input.

    Args:
        backbone: encoder, one of ``kseg.models.backbones.names()`` (mobilenetv2, resnet18,
            resnet50).
        width: channel multiplier of the backbone (MobileNetV2's alpha; ResNets scale every
            stage).
        output_stride: input size / feature size at the ASPP, 8, 16 or 32 (8: finer, slower;
            the weights do not change, so a model trained at 16 can be exported at 8).
        aspp_channels: channels of each ASPP branch and of its projection.
        dropout: dropout rate after the ASPP projection.
        weights: ``imagenet`` to start the backbone from ImageNet weights (Keras Applications;
            needs them downloaded once, or cached), or None to train from scratch.

    Example::

        kseg.models.build("deeplabv3", num_classes=11, backbone="resnet18", output_stride=8)
    """
    _validate("deeplabv3", output_stride, aspp_channels, dropout)
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    features = backbones.encode(inputs, backbone, output_stride, width, weights)
    x = aspp(features[max(features)], int(aspp_channels), _rates(output_stride), False, dropout)
    logits = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    logits = _upsample(logits, output_stride, "upsample", dtype="float32")
    return backbones.finish(logits, inputs, "deeplabv3", backbone, width, weights)


@register("deeplabv3plus")
def build_deeplabv3plus(
    *,
    num_classes: int,
    input_shape: tuple = (None, None, 3),
    backbone: str = "mobilenetv2",
    width: float = 1.0,
    output_stride: int = 16,
    aspp_channels: int = 256,
    low_level_channels: int = 48,
    decoder_channels: int = 256,
    decoder_convs: int = 2,
    separable: bool = True,
    dropout: float = 0.1,
    weights: str = None,
) -> keras.Model:
    """DeepLabv3+ (Chen et al. 2018): the DeepLabv3 encoder, and a decoder that upsamples the ASPP
    output to stride 4, joins it with the backbone's stride-4 features and refines it.

    Args:
        backbone: encoder, one of ``kseg.models.backbones.names()`` (mobilenetv2, resnet18,
            resnet50).
        width: channel multiplier of the backbone (MobileNetV2's alpha; ResNets scale every
            stage).
        output_stride: input size / feature size at the ASPP, 8, 16 or 32.
        aspp_channels: channels of each ASPP branch and of its projection.
        low_level_channels: the stride-4 backbone features are reduced to this many channels
            (48 in the paper) before they are joined with the upsampled ASPP output.
        decoder_channels: channels of the decoder convolutions.
        decoder_convs: number of 3x3 convolutions refining the decoder (0: one 1x1 convolution).
        separable: depthwise-separable 3x3 convolutions in the ASPP and decoder (the paper's
            choice), else plain ones.
        dropout: dropout rate after the ASPP projection.
        weights: ``imagenet`` to start the backbone from ImageNet weights (Keras Applications;
            needs them downloaded once, or cached), or None to train from scratch.

    Example::

        kseg.models.build("deeplabv3plus", num_classes=11, input_shape=(360, 480, 3),
                          aspp_channels=128, decoder_channels=96)
    """
    _validate("deeplabv3plus", output_stride, aspp_channels, dropout)
    if low_level_channels < 1 or decoder_channels < 1:
        raise ModelConfigError("deeplabv3plus: low_level_channels and decoder_channels must be positive")
    if int(decoder_convs) < 0:
        raise ModelConfigError(f"deeplabv3plus: decoder_convs must be >= 0, got {decoder_convs}")
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    features = backbones.encode(inputs, backbone, output_stride, width, weights)
    x = aspp(features[max(features)], int(aspp_channels), _rates(output_stride), bool(separable),
             dropout)

    low = conv_bn(features[4], int(low_level_channels), "decoder_low_level")
    x = _upsample(x, output_stride // 4, "decoder_upsample")
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    for i in range(int(decoder_convs)):
        if separable:
            x = separable_conv_bn(x, int(decoder_channels), f"decoder_sep{i + 1}")
        else:
            x = conv_bn(x, int(decoder_channels), f"decoder_conv{i + 1}", kernel_size=3)
    if not int(decoder_convs):
        x = conv_bn(x, int(decoder_channels), "decoder_project")
    logits = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    logits = _upsample(logits, 4, "upsample", dtype="float32")
    return backbones.finish(logits, inputs, "deeplabv3plus", backbone, width, weights)
