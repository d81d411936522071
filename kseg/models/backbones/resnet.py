"""ResNet-18 (basic blocks) and ResNet-50 (bottleneck blocks, v1 as in keras.applications, stride
on the first 1x1) (He et al., 2016), with a channel width multiplier and atrous stages: when a
stage would pass ``output_stride`` it keeps the resolution and dilates its 3x3 convolutions
instead, as in DeepLabv3. ResNet-50 layer names match ``keras.applications.ResNet50``."""

import keras

from kseg.models.layers import BN_MOMENTUM
from kseg.models.registry import ModelConfigError

BN = {"epsilon": 1.001e-5, "momentum": BN_MOMENTUM}


def _conv_bn(x, filters, kernel, name, stride=1, dilation=1, relu=True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, dilation_rate=dilation, padding="same",
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn", **BN)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic(x, filters, name, stride, dilation, next_dilation):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, f"{name}_0", stride=stride, relu=False)
    x = _conv_bn(x, filters, 3, f"{name}_1", stride=stride, dilation=dilation)
    x = _conv_bn(x, filters, 3, f"{name}_2", dilation=next_dilation, relu=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def _bottleneck(x, filters, name, stride, dilation, next_dilation):
    shortcut = x
    if stride != 1 or x.shape[-1] != 4 * filters:
        shortcut = _conv_bn(x, 4 * filters, 1, f"{name}_0", stride=stride, relu=False)
    x = _conv_bn(x, filters, 1, f"{name}_1", stride=stride)
    x = _conv_bn(x, filters, 3, f"{name}_2", dilation=dilation)
    x = _conv_bn(x, 4 * filters, 1, f"{name}_3", relu=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def _resnet(name, block, repeats, x, output_stride, width):
    from kseg.models.backbones import AtrousSchedule

    if not 0.125 <= float(width) <= 1.0:
        raise ModelConfigError(f"{name}: width must be in 0.125..1.0, got {width}")
    sched = AtrousSchedule(output_stride)
    channels = [max(8, int(round(c * width))) for c in (64, 128, 256, 512)]
    stride, _ = sched.step(2)
    x = _conv_bn(x, channels[0], 7, "conv1", stride=stride)
    stride, _ = sched.step(2)
    x = keras.layers.MaxPooling2D(3, strides=stride, padding="same", name="pool1_pool")(x)
    features = {}
    for stage, (filters, n) in enumerate(zip(channels, repeats)):
        for j in range(n):
            first_dilation = sched.dilation
            stride, _ = sched.step(2 if j == 0 and stage > 0 else 1)
            # the block that gives up its stride keeps the old dilation in its first 3x3 conv
            x = block(x, filters, f"conv{stage + 2}_block{j + 1}", stride,
                      first_dilation if j == 0 else sched.dilation, sched.dilation)
        features[sched.stride] = x
    return features


def resnet18(x, *, output_stride=32, width=1.0):
    return _resnet("resnet18", _basic, (2, 2, 2, 2), x, output_stride, width)


def resnet50(x, *, output_stride=32, width=1.0):
    return _resnet("resnet50", _bottleneck, (3, 4, 6, 3), x, output_stride, width)
