"""Backbones (encoders) by name. Each is a function

    backbone(x, *, output_stride=32, width=1.0) -> {stride: feature tensor}

that wires its layers onto the float tensor ``x`` (the preprocessed image) and returns feature maps
keyed by their stride relative to the input (4, 8, 16, 32; later strides are atrous: when a stage
would go below ``output_stride`` it keeps the resolution and dilates instead). Heads ask for
strides, never layer names.

Layer names follow keras.applications where ImageNet weights exist there, so
``load_imagenet_weights`` can copy them by name.
"""

from kseg.models.backbones.mobilenetv2 import mobilenetv2
from kseg.models.backbones.resnet import resnet18, resnet50
from kseg.models.registry import ModelConfigError

BACKBONES = {"mobilenetv2": mobilenetv2, "resnet18": resnet18, "resnet50": resnet50}
OUTPUT_STRIDES = (8, 16, 32)


def names():
    return sorted(BACKBONES)


def get(name):
    try:
        return BACKBONES[name]
    except KeyError:
        raise ModelConfigError(f"unknown backbone {name!r}; available: {', '.join(names())}") from None


def check_output_stride(model_name, output_stride):
    if output_stride not in OUTPUT_STRIDES:
        raise ModelConfigError(
            f"{model_name}: output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, "
            f"got {output_stride}"
        )


class AtrousSchedule:
    """Tracks the running stride; converts strides beyond ``output_stride`` into dilation."""

    def __init__(self, output_stride):
        self.output_stride = output_stride
        self.stride = 1
        self.dilation = 1

    def step(self, stride):
        """(stride, dilation) for a layer that asks for ``stride``."""
        if stride > 1 and self.stride * stride > self.output_stride:
            dilation = self.dilation
            self.dilation *= stride
            return 1, dilation  # the striding layer itself keeps the previous dilation
        self.stride *= stride
        return stride, self.dilation


def preprocessing(backbone, weights):
    """``Preprocess`` arguments matching the ImageNet weights' training (default: 0..255 -> -1..1)."""
    if weights and backbone == "resnet50":  # keras.applications ResNet50: caffe style, BGR means
        return {"scale": 1.0, "offset": [-103.939, -116.779, -123.68], "bgr": True}
    return {}


def _reference_model(backbone, width, weights):
    import keras

    if backbone == "mobilenetv2":
        return keras.applications.MobileNetV2(include_top=False, weights=weights, alpha=width,
                                              input_shape=(224, 224, 3))
    if backbone == "resnet50" and width == 1.0:
        return keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(224, 224, 3))
    raise ModelConfigError(
        f"no ImageNet weights for backbone {backbone} at width {width} in keras.applications "
        f"(available: mobilenetv2 at widths 0.35/0.5/0.75/1.0, resnet50 at width 1.0)"
    )


def copy_weights_by_name(source, target):
    """Copy the weights of every layer of ``source`` whose name and shapes match one in
    ``target``; returns the names copied."""
    layers = {layer.name: layer for layer in target.layers}
    copied = []
    for layer in source.layers:
        other = layers.get(layer.name)
        if other is None or not layer.weights:
            continue
        src = layer.get_weights()
        if [w.shape for w in src] != [w.shape for w in other.get_weights()]:
            raise ModelConfigError(f"layer {layer.name}: weight shapes differ from the reference model")
        other.set_weights(src)
        copied.append(layer.name)
    return copied


def load_imagenet_weights(model, backbone, width, weights):
    """Load ``weights`` ("imagenet", downloaded by keras.applications, or the path of a
    keras.applications weights file for offline use) into the backbone layers of ``model``."""
    copied = copy_weights_by_name(_reference_model(backbone, float(width), weights), model)
    if not copied:
        raise ModelConfigError(f"no backbone layer of {model.name} matched the {backbone} weights")
    return copied


def encode(inputs, backbone, output_stride, width, weights):
    """The shared front of backbone models: uint8 image -> preprocessing (matching ``weights``)
    -> padding to a multiple of 32 -> backbone features ``{stride: tensor}``."""
    from kseg.models.layers import PadToMultiple, Preprocess

    x = Preprocess(name="preprocess", **preprocessing(backbone, weights))(inputs)
    x = PadToMultiple(32, name="pad")(x)
    return get(backbone)(x, output_stride=output_stride, width=float(width))


def finish(logits, inputs, name, backbone, width, weights):
    """The shared end: float32 logits cropped back to the input size, the model, and the
    backbone's pretrained weights when asked for."""
    import keras

    from kseg.models.layers import CropToReference

    logits = CropToReference(name="crop", dtype="float32")([logits, inputs])
    model = keras.Model(inputs, logits, name=name)
    if weights:
        load_imagenet_weights(model, backbone, width, weights)
    return model
