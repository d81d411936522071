"""MobileNetV2 (Sandler et al., 2018): inverted residual blocks (1x1 expansion, 3x3 depthwise,
linear 1x1 projection) with a width multiplier; atrous last stages for output stride 8 or 16, as
in DeepLabv3. Layer names match ``keras.applications.MobileNetV2`` so its ImageNet weights load
by name."""

import keras

from kseg.models.layers import BN_MOMENTUM
from kseg.models.registry import ModelConfigError

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
BN = {"epsilon": 1e-3, "momentum": BN_MOMENTUM}  # keras.applications: 0.999 (see BN_MOMENTUM)


def make_divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _block(x, index, expansion, filters, stride, dilation):
    prefix = "expanded_conv_" if index == 0 else f"block_{index}_"
    in_channels = x.shape[-1]
    inputs = x
    if index:
        x = keras.layers.Conv2D(expansion * in_channels, 1, use_bias=False, name=f"{prefix}expand")(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}expand_BN", **BN)(x)
        x = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=stride, dilation_rate=dilation, padding="same",
                                     use_bias=False, name=f"{prefix}depthwise")(x)
    x = keras.layers.BatchNormalization(name=f"{prefix}depthwise_BN", **BN)(x)
    x = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}project")(x)
    x = keras.layers.BatchNormalization(name=f"{prefix}project_BN", **BN)(x)
    if stride == 1 and in_channels == filters:
        x = keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def mobilenetv2(x, *, output_stride=32, width=1.0):
    from kseg.models.backbones import AtrousSchedule

    if not 0.35 <= float(width) <= 1.0:
        raise ModelConfigError(f"mobilenetv2: width (multiplier alpha) must be in 0.35..1.0, got {width}")
    sched = AtrousSchedule(output_stride)
    stride, _ = sched.step(2)
    x = keras.layers.Conv2D(make_divisible(32 * width), 3, strides=stride, padding="same",
                            use_bias=False, name="Conv1")(x)
    x = keras.layers.BatchNormalization(name="bn_Conv1", **BN)(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    features = {sched.stride: x}
    index = 0
    for t, c, n, s in BLOCKS:
        filters = make_divisible(int(c * width))
        for i in range(n):
            stride, dilation = sched.step(s if i == 0 else 1)
            x = _block(x, index, t, filters, stride, dilation if i == 0 else sched.dilation)
            features[sched.stride] = x  # the deepest block at each stride wins
            index += 1
    return features
