"""Auxiliary heads (deep supervision): intermediate features that also predict the classes in
training, each scored by its own loss, as Fast-SCNN's paper trains (a head on the 1/8 and one on
the 1/32 features, loss weight 0.4).

The training model keeps one output: the main logits, then each head's logits, packed on the
channel axis ``[B, H, W, (1 + A) * C]`` by the layer ``OUTPUTS``. So the fit, the callbacks, the
checkpoints and a resumed run see one model, as without heads; ``kseg.losses.DeepSupervision``
scores each part and ``ConfusionMatrix(heads=...)`` reads the main one (``kseg.losses.
split_heads`` is the packing rule). ``inference_model`` takes the main output alone:
``kseg.models.load_model(path)``, which every evaluation and export goes through, applies it
(``training=True``, for resuming and ``--init-from``, does not), so an exported file never holds
a head.

A head: 3x3 conv + BN + ReLU at the feature's width, dropout, a 1x1 conv to class logits, and the
main output's bilinear upsampling (the feature's stride) and crop to the image.
"""

import keras
from keras import ops

from kseg.models.layers import BilinearUpsample, CropToReference, conv_bn
from kseg.models.registry import ModelConfigError

OUTPUTS = "auxiliary_outputs"  # the layer that packs the main and auxiliary logits


def add_heads(model, taps, dropout=0.1):
    """The training form of ``model``: one head per ``{layer name: stride}`` of ``taps``, their
    logits packed after the main output's. The heads' weights are new; the model's are shared."""
    if not taps:
        raise ModelConfigError(f"{model.name}: no auxiliary heads are declared for this model")
    if heads(model) > 1:
        raise ModelConfigError(f"{model.name} already has auxiliary heads")
    image, logits = model.inputs[0], model.outputs[0]
    num_classes = logits.shape[-1]
    outputs = [logits]
    for i, (layer_name, stride) in enumerate(taps.items(), 1):
        try:
            feature = model.get_layer(layer_name).output
        except ValueError:
            raise ModelConfigError(f"{model.name}: no layer {layer_name!r} to put auxiliary "
                                   f"head {i} on") from None
        name = f"aux{i}"
        x = conv_bn(feature, feature.shape[-1], f"{name}_conv3x3", kernel_size=3)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name=f"{name}_dropout")(x)
        x = keras.layers.Conv2D(num_classes, 1, name=f"{name}_classifier")(x)
        x = BilinearUpsample(int(stride), name=f"{name}_upsample", dtype="float32")(x)
        outputs.append(CropToReference(name=f"{name}_crop", dtype="float32")([x, image]))
    packed = PackHeads(name=OUTPUTS, dtype="float32")(outputs)
    return keras.Model(model.input, packed, name=model.name)


@keras.saving.register_keras_serializable(package="kseg")
class PackHeads(keras.layers.Layer):
    """Predictions ``[B, H, W, C]`` each, packed as ``[B, H, W, len(inputs) * C]`` in order
    (``kseg.losses.split_heads`` undoes it): a stack and a reshape, the same layout as a
    concatenation, whose backward pass slices the channel axis at several times the cost."""

    def call(self, inputs):
        x = ops.stack(inputs, axis=-2)
        shape = ops.shape(x)
        return ops.reshape(x, (*shape[:-2], shape[-2] * shape[-1]))

    def compute_output_shape(self, input_shapes):
        first = input_shapes[0]
        return (*first[:-1], None if first[-1] is None else first[-1] * len(input_shapes))


def heads(model):
    """How many predictions ``model``'s output packs: 1 + its auxiliary heads."""
    try:
        layer = model.get_layer(OUTPUTS)
    except ValueError:
        return 1
    return len(layer.input)


def inference_model(model):
    """``model`` with its main output alone (itself when it has no auxiliary heads)."""
    if heads(model) == 1:
        return model
    main = model.get_layer(OUTPUTS).input[0]
    return keras.Model(model.input, main, name=model.name)
