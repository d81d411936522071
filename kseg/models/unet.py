"""U-Net (Ronneberger et al., 2015): a contracting path of double 3x3 convolutions and 2x2 max
pooling, a symmetric expanding path, and skip concatenation at every level.

Differences from the paper, as is usual today: "same" padding (so the output matches the input size
instead of shrinking), optional batch norm, and a choice of transposed-convolution or bilinear
upsampling.
"""

import keras

from kseg.models.layers import CropToReference, PadToMultiple, Preprocess, conv_bn_relu
from kseg.models.registry import ModelConfigError, register

UPSAMPLING_MODES = ("transpose", "bilinear")


def _double_conv(x, filters, name, batch_norm):
    x = conv_bn_relu(x, filters, f"{name}_a", batch_norm=batch_norm)
    return conv_bn_relu(x, filters, f"{name}_b", batch_norm=batch_norm)


@register("unet")
def build_unet(
    *,
    num_classes: int,
    input_shape: tuple = (None, None, 3),
    depth: int = 4,
    base_filters: int = 64,
    batch_norm: bool = True,
    upsampling: str = "transpose",
    dropout: float = 0.0,
) -> keras.Model:
    """U-Net (Ronneberger et al. 2015): a contracting path of two 3x3 convolutions and a 2x2
    max-pooling per level, an expanding path that upsamples and joins the features of the same
    level (skip connections). Any input size works: it is padded to a multiple of ``2**depth``
    inside the model and the logits are cropped back.

    Args:
        depth: number of poolings (the paper's 5-level net is depth 4), 1..6.
        base_filters: filters at the first level, doubled per level (64 in the paper).
        batch_norm: batch normalisation after every convolution (not in the paper; trains far
            faster from scratch).
        upsampling: ``transpose`` (2x2 transposed convolution, the paper's up-convolution) or
            ``bilinear`` (bilinear resize then a 1x1 convolution).
        dropout: dropout rate at the bottom of the U.

    Example::

        kseg.models.build("unet", num_classes=2, input_shape=(512, 512, 3), base_filters=16)
    """
    # 1. validate
    if not 1 <= int(depth) <= 6:
        raise ModelConfigError(f"unet: depth must be in 1..6, got {depth}")
    if int(base_filters) < 1:
        raise ModelConfigError(f"unet: base_filters must be positive, got {base_filters}")
    if upsampling not in UPSAMPLING_MODES:
        raise ModelConfigError(
            f"unet: upsampling must be one of {', '.join(UPSAMPLING_MODES)}, got {upsampling!r}"
        )
    if not 0.0 <= float(dropout) < 1.0:
        raise ModelConfigError(f"unet: dropout must be in [0, 1), got {dropout}")
    depth, base_filters = int(depth), int(base_filters)

    # 2. wire
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = Preprocess(name="preprocess")(inputs)
    x = PadToMultiple(2**depth, name="pad")(x)

    skips = []
    for level in range(depth):
        x = _double_conv(x, base_filters * 2**level, f"enc{level}", batch_norm)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)

    x = _double_conv(x, base_filters * 2**depth, "bottleneck", batch_norm)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)

    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        if upsampling == "transpose":
            x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"dec{level}_up")(x)
        else:
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = _double_conv(x, filters, f"dec{level}", batch_norm)

    logits = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    logits = CropToReference(name="crop", dtype="float32")([logits, inputs])

    # 3. config travels with the model so that exports and evaluation can rebuild it
    return keras.Model(inputs, logits, name="unet")
