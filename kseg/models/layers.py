"""Layers shared by every model family.

Model code uses ``keras.layers`` and ``keras.ops`` only (never ``tf.*``) so that it builds and trains
under the JAX backend too.
"""

import keras
from keras import ops

# Batch-norm moving averages follow the batch statistics with this momentum (PyTorch's 0.1 in
# Keras terms). keras.applications' 0.999 suits long ImageNet runs; trained from scratch on a few
# hundred images the weights move faster than such an average, and eval-mode statistics lag far
# behind the training-mode ones (a CamVid run predicted one class in eval mode after 8 epochs).
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="kseg")
class Preprocess(keras.layers.Layer):
    """Turns raw uint8 RGB pixels (0..255) into the float range the network trains on.

    Normalisation lives inside the model so that exported files take raw uint8 images: an app hands
    over camera pixels and nothing else. ``x * scale + offset`` (each a number or one value per
    channel) with defaults mapping 0..255 to -1..1; ``bgr=True`` reverses the channels first (for
    weights trained on BGR input).
    """

    def __init__(self, scale=1.0 / 127.5, offset=-1.0, bgr=False, **kwargs):
        super().__init__(**kwargs)
        self.scale = [float(v) for v in scale] if isinstance(scale, (list, tuple)) else float(scale)
        self.offset = [float(v) for v in offset] if isinstance(offset, (list, tuple)) else float(offset)
        self.bgr = bool(bgr)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.bgr:
            x = ops.flip(x, axis=-1)
        scale = ops.convert_to_tensor(self.scale, dtype=self.compute_dtype)
        offset = ops.convert_to_tensor(self.offset, dtype=self.compute_dtype)
        return x * scale + offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset, "bgr": self.bgr}


def conv_bn_relu(x, filters, name, kernel_size=3, batch_norm=True):
    """3x3 convolution, optional batch norm, ReLU; the conv has no bias when BN follows it."""
    x = keras.layers.Conv2D(
        filters, kernel_size, padding="same", use_bias=not batch_norm,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
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


def conv_bn(x, filters, name, kernel_size=1, strides=1, dilation=1, activation="relu"):
    """Conv (no bias) + BN + optional ReLU (``activation=None`` for a linear projection)."""
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, dilation_rate=dilation, padding="same",
        use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def separable_conv_bn(x, filters, name, dilation=1, strides=1):
    """Depthwise-separable 3x3 conv as in DeepLabv3+ and Fast-SCNN: depthwise (dilated or
    strided) + BN + ReLU, then a pointwise 1x1 + BN + ReLU."""
    x = keras.layers.DepthwiseConv2D(
        3, strides=strides, dilation_rate=dilation, padding="same", use_bias=False,
        name=f"{name}_depthwise",
    )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_depthwise_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
    return conv_bn(x, filters, f"{name}_pointwise")


@keras.saving.register_keras_serializable(package="kseg")
class TileToReference(keras.layers.Layer):
    """Repeats a ``[B, 1, 1, C]`` tensor over the height and width of ``inputs[1]`` (ASPP's
    image-pooling branch). Static sizes tile by constants; unknown sizes are read at run time."""

    def call(self, inputs):
        x, ref = inputs
        h, w = ref.shape[1], ref.shape[2]
        if h is None or w is None:
            shape = ops.shape(ref)
            h, w = shape[1], shape[2]
        return ops.tile(x, [1, h, w, 1])

    def compute_output_shape(self, input_shapes):
        x, ref = input_shapes
        return (x[0], ref[1], ref[2], x[3])


def _resize_traced(x, size):
    """Bilinear resize (half-pixel centres) to a size known only when the graph runs: a model of
    any input size traced by TensorFlow (JAX traces static shapes, so it never comes here).
    ``keras.ops.image.resize`` takes Python ints only, so this is TensorFlow's own resize, the
    op that ``keras.ops.image.resize`` runs under the TensorFlow backend."""
    import tensorflow as tf

    return tf.image.resize(x, size, method="bilinear")


def _bilinear_matmul(x, h, w):
    """``x`` resized bilinearly (half-pixel centres) to ``h`` x ``w`` as two matrix products over
    the spatial axes: the same values as ``ops.image.resize``, but it converts to TFLite as
    FULLY_CONNECTED (with RESHAPE and TRANSPOSE), which NPU compilers map at any scale, where
    they take RESIZE_BILINEAR only at a few scales. Static sizes only."""
    from kseg.resize import bilinear_matrix

    rows = ops.convert_to_tensor(bilinear_matrix(h, x.shape[1]), dtype=x.dtype)
    cols = ops.convert_to_tensor(bilinear_matrix(w, x.shape[2]), dtype=x.dtype)
    x = ops.einsum("hi,biwc->bhwc", rows, x)
    return ops.einsum("wj,bhjc->bhwc", cols, x)


@keras.saving.register_keras_serializable(package="kseg")
class BilinearUpsample(keras.layers.Layer):
    """Bilinear upsampling by an integer ``factor`` (half-pixel centres, as TFLite's
    RESIZE_BILINEAR). Unlike ``UpSampling2D`` it also runs in graphs traced with unknown sizes.
    ``matmul=True`` computes the same values as matrix products (``_bilinear_matmul``: the form
    an NPU compiler maps; static sizes only)."""

    def __init__(self, factor, matmul=False, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        self.matmul = bool(matmul)

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        if h is not None and w is not None:
            if self.matmul:
                return _bilinear_matmul(x, h * self.factor, w * self.factor)
            return ops.image.resize(x, (h * self.factor, w * self.factor), interpolation="bilinear")
        shape = ops.shape(x)
        return _resize_traced(x, (shape[1] * self.factor, shape[2] * self.factor))

    def compute_output_shape(self, input_shape):
        def up(d):
            return None if d is None else d * self.factor

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "matmul": self.matmul}


@keras.saving.register_keras_serializable(package="kseg")
class CornerGrid(keras.layers.Layer):
    """Scores ``[B, h, w, C]`` at a network's ``stride`` moved onto the grid that a corners-aligned
    upsampling to ``image_size`` reads them on (``kseg.resize.corner_grid_matrix``), as two
    constant matrix products over the spatial axes (FULLY_CONNECTED in TFLite, which CPUs and NPU
    compilers take whole). The last layer of every export at the network's stride
    (``kseg.export.forms.at_model_resolution``); static sizes only."""

    def __init__(self, image_size, stride, **kwargs):
        super().__init__(**kwargs)
        self.image_size = tuple(int(d) for d in image_size)
        self.stride = int(stride)
        if len(self.image_size) != 2 or min(self.image_size) < 1 or self.stride < 1:
            raise ValueError(f"CornerGrid: image_size (height, width) and stride must be positive, "
                             f"got {image_size}, {stride}")

    def call(self, x):
        from kseg.resize import corner_grid_matrix

        (height, width), (h, w) = self.image_size, (x.shape[1], x.shape[2])
        rows = ops.convert_to_tensor(corner_grid_matrix(h, height, self.stride), dtype=x.dtype)
        cols = ops.convert_to_tensor(corner_grid_matrix(w, width, self.stride), dtype=x.dtype)
        x = ops.einsum("hi,biwc->bhwc", rows, x)
        return ops.einsum("wj,bhjc->bhwc", cols, x)

    def get_config(self):
        return {**super().get_config(), "image_size": list(self.image_size), "stride": self.stride}


def _adaptive_pool_matrix(size, bins, dtype):
    """``[bins, size]`` averaging weights of adaptive average pooling along one axis: bin ``i``
    averages positions ``floor(i * size / bins)`` up to ``ceil((i + 1) * size / bins)``, as
    PyTorch's ``adaptive_avg_pool2d``. ``size`` may be a Python int (the matrix is a constant) or
    a scalar tensor (unknown sizes, built at run time)."""
    if isinstance(size, int):
        import numpy as np

        i = np.arange(bins)[:, None]
        j = np.arange(size)[None, :]
        inside = (j >= (i * size) // bins) & (j < -((-(i + 1) * size) // bins))
        return ops.convert_to_tensor(inside / inside.sum(axis=1, keepdims=True), dtype=dtype)
    i = ops.expand_dims(ops.arange(bins, dtype="int32"), 1)
    j = ops.expand_dims(ops.arange(size, dtype="int32"), 0)
    start = ops.floor_divide(i * size, bins)
    end = -ops.floor_divide(-(i + 1) * size, bins)
    inside = ops.cast(ops.logical_and(j >= start, j < end), dtype)
    return inside / ops.sum(inside, axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="kseg")
class AdaptiveAveragePool(keras.layers.Layer):
    """Average pooling to a ``bins x bins`` grid whatever the input size (the pyramid-pooling
    branches of PSPNet and Fast-SCNN). Written as two small matrix products with averaging
    weights, so that one formula serves known sizes (constants, folded at export) and unknown
    ones, and the result equals PyTorch's ``adaptive_avg_pool2d``.

    Why not ``keras.layers.AdaptiveAveragePooling2D``: it computes the same values, but converts
    to TFLite as one AVERAGE_POOL_2D per bin row and column stitched with GATHER and
    CONCATENATION, where this layer is two FULLY_CONNECTED (tests/test_models.py compares both);
    and every saved kseg checkpoint names this layer."""

    def __init__(self, bins, **kwargs):
        super().__init__(**kwargs)
        self.bins = int(bins)
        if self.bins < 1:
            raise ValueError(f"AdaptiveAveragePool: bins must be positive, got {bins}")

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        if h is None or w is None:
            shape = ops.shape(x)
            h = shape[1] if h is None else h
            w = shape[2] if w is None else w
        rows = _adaptive_pool_matrix(h, self.bins, self.compute_dtype)
        cols = _adaptive_pool_matrix(w, self.bins, self.compute_dtype)
        x = ops.einsum("ih,bhwc->biwc", rows, x)
        return ops.einsum("jw,biwc->bijc", cols, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.bins, self.bins, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


@keras.saving.register_keras_serializable(package="kseg")
class ResizeToReference(keras.layers.Layer):
    """Bilinear resize of ``inputs[0]`` to the height and width of ``inputs[1]`` (half-pixel
    centres, as TFLite's RESIZE_BILINEAR); unknown sizes are read at run time. ``matmul=True``:
    the same values as matrix products (the form an NPU compiler maps; static sizes only)."""

    def __init__(self, matmul=False, **kwargs):
        super().__init__(**kwargs)
        self.matmul = bool(matmul)

    def call(self, inputs):
        x, ref = inputs
        h, w = ref.shape[1], ref.shape[2]
        if h is not None and w is not None:
            if self.matmul and x.shape[1] is not None and x.shape[2] is not None:
                return _bilinear_matmul(x, h, w)
            return ops.image.resize(x, (h, w), interpolation="bilinear")
        shape = ops.shape(ref)
        return _resize_traced(x, (shape[1], shape[2]))

    def compute_output_shape(self, input_shapes):
        x, ref = input_shapes
        return (x[0], ref[1], ref[2], x[3])

    def get_config(self):
        return {**super().get_config(), "matmul": self.matmul}
