"""Layers shared by every model family.

Model code uses ``keras.layers`` and ``keras.ops`` only (never ``tf.*``) so that it builds and trains
under the JAX backend too.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kseg")
class Preprocess(keras.layers.Layer):
    """Turns raw uint8 RGB pixels (0..255) into the float range the network trains on.

    Normalisation lives inside the model so that exported files take raw uint8 images: an app hands
    over camera pixels and nothing else. ``x * scale + offset`` with defaults mapping 0..255 to -1..1.
    """

    def __init__(self, scale=1.0 / 127.5, offset=-1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.offset = float(offset)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return x * ops.cast(self.scale, self.compute_dtype) + ops.cast(self.offset, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def conv_bn_relu(x, filters, name, kernel_size=3, batch_norm=True):
    """3x3 convolution, optional batch norm, ReLU; the conv has no bias when BN follows it."""
    x = keras.layers.Conv2D(
        filters, kernel_size, padding="same", use_bias=not batch_norm, name=f"{name}_conv"
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _pad_amount(size, multiple):
    return (-size) % multiple


@keras.saving.register_keras_serializable(package="kseg")
class PadToMultiple(keras.layers.Layer):
    """Zero-pads height and width at the bottom/right up to a multiple of ``multiple``.

    Lets a fully convolutional model with total stride ``multiple`` accept any image size. When the
    size is static and already divisible the layer is the identity and adds no op to the graph.
    """

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        h, w = inputs.shape[1], inputs.shape[2]
        if h is not None and w is not None:
            ph, pw = _pad_amount(h, self.multiple), _pad_amount(w, self.multiple)
            if ph == 0 and pw == 0:
                return inputs
        else:
            shape = ops.shape(inputs)
            ph = _pad_amount(shape[1], self.multiple)
            pw = _pad_amount(shape[2], self.multiple)
        return ops.pad(inputs, [[0, 0], [0, ph], [0, pw], [0, 0]])

    def compute_output_shape(self, input_shape):
        def up(d):
            return None if d is None else d + _pad_amount(d, self.multiple)

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="kseg")
class CropToReference(keras.layers.Layer):
    """Crops ``inputs[0]`` to the height and width of ``inputs[1]`` (undoes ``PadToMultiple``)."""

    def call(self, inputs):
        x, ref = inputs
        h, w = ref.shape[1], ref.shape[2]
        if h is not None and w is not None:
            if x.shape[1] == h and x.shape[2] == w:
                return x
        else:
            shape = ops.shape(ref)
            h, w = shape[1], shape[2]
        return x[:, :h, :w, :]

    def compute_output_shape(self, input_shapes):
        x, ref = input_shapes
        return (x[0], ref[1], ref[2], x[3])
