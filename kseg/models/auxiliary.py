"""Auxiliary heads (deep supervision): intermediate features that also predict the classes in
training, each scored by its own loss, as Fast-SCNN's paper trains (a head on the 1/8 and one on
the 1/32 features, loss weight 0.4).

The training model keeps one output: the main logits ``[B, H, W, C]`` with, packed as rows under
them, each head's logits at its own resolution (``kseg.losses.split_heads`` is the packing rule,
``PackHeads`` the layer ``OUTPUTS`` that applies it). So the fit, the callbacks, the checkpoints
and a resumed run see one model, as without heads; ``kseg.losses.DeepSupervision`` scores each
part and ``ConfusionMatrix(aux_strides=...)`` reads the main one. ``inference_model`` takes the
main output alone: ``kseg.models.load_model(path)``, which every evaluation and export goes
through, applies it (``training=True``, for resuming and ``--init-from``, does not), so an
exported file never holds a head.

A head: 3x3 conv + BN + ReLU at the feature's width, dropout, a 1x1 conv to class logits. It is
scored at the feature's own resolution against the labels at its cells' centres
(``kseg.losses.head_labels``), not upsampled to the image: on a CPU, upsampling both heads to
360x480 and scoring them there cost about as much as the rest of a Fast-SCNN training step.
"""

import keras
from keras import ops

from kseg.losses import head_size
from kseg.models.layers import conv_bn
from kseg.models.registry import ModelConfigError

OUTPUTS = "auxiliary_outputs"  # the layer that packs the main and auxiliary logits
OLDER = ("its auxiliary heads were packed on the channel axis by an older kseg: it loads to "
         "predict with (its main output), not to train further; train it again")


def add_heads(model, taps, dropout=0.1):
    """The training form of ``model``: one head per ``{layer name: stride}`` of ``taps``, their
    logits packed under the main output's. The heads' weights are new; the model's are shared."""
    if not taps:
        raise ModelConfigError(f"{model.name}: no auxiliary heads are declared for this model")
    if heads(model) > 1:
        raise ModelConfigError(f"{model.name} already has auxiliary heads")
    image, logits = model.inputs[0], model.outputs[0]
    num_classes = logits.shape[-1]
    outputs, head_strides = [logits], []
    known = None not in image.shape[1:3]
    for i, (layer_name, stride) in enumerate(taps.items(), 1):
        try:
            feature = model.get_layer(layer_name).output
        except ValueError:
            raise ModelConfigError(f"{model.name}: no layer {layer_name!r} to put auxiliary "
                                   f"head {i} on") from None
        name = f"aux{i}"
        if known and not _covers(feature.shape[1:3], image.shape[1:3], stride, max(taps.values())):
            raise ModelConfigError(
                f"{model.name}: layer {layer_name!r} is {feature.shape[1]}x{feature.shape[2]}: "
                f"not a stride-{stride} grid of the {image.shape[1]}x{image.shape[2]} input "
                f"({'x'.join(map(str, head_size(image.shape[1:3], stride)))}, plus padding)")
        x = conv_bn(feature, feature.shape[-1], f"{name}_conv3x3", kernel_size=3)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name=f"{name}_dropout")(x)
        outputs.append(keras.layers.Conv2D(num_classes, 1, name=f"{name}_classifier")(x))
        head_strides.append(int(stride))
    packed = PackHeads(head_strides, name=OUTPUTS, dtype="float32")(outputs)
    return keras.Model(model.input, packed, name=model.name)


def _covers(grid, size, stride, coarsest):
    """Whether a feature ``grid`` is a stride-``stride`` grid of an image of ``size``: its cells
    cover the image (``head_size``), and any past it lie in padding of less than one cell of the
    coarsest head (a model pads its input bottom/right to a multiple of its largest stride)."""
    want = head_size(size, stride)
    return all(w <= g and (g - w) * stride < coarsest for g, w in zip(grid, want))


@keras.saving.register_keras_serializable(package="kseg")
class PackHeads(keras.layers.Layer):
    """The main logits ``[B, H, W, C]`` and one head's per stride s, packed as rows: each head
    cropped to the ``[B, ceil(H/s), ceil(W/s), C]`` cells that see the image (a model that pads
    its input bottom/right has more) and padded on the right to W, then all concatenated on the
    height axis (``kseg.losses.split_heads`` undoes it)."""

    def __init__(self, strides=None, **kwargs):
        super().__init__(**kwargs)
        # None: a checkpoint of an older kseg, whose heads were upsampled to the image and
        # stacked on the channel axis; it is rebuilt as saved so that its main output can be used
        self.strides = None if strides is None else [int(s) for s in strides]

    def call(self, inputs):
        main, *aux = inputs
        if self.strides is None:
            x = ops.stack(inputs, axis=-2)
            shape = ops.shape(x)
            return ops.reshape(x, (*shape[:-2], shape[-2] * shape[-1]))
        if len(aux) != len(self.strides):
            raise ValueError(f"{len(aux)} heads packed for {len(self.strides)} strides")
        size = ops.shape(main)[1:3]
        parts = [main]
        for s, head in zip(self.strides, aux):
            h, w = head_size(size, s)
            head = ops.cast(head[:, :h, :w], main.dtype)
            parts.append(ops.pad(head, [[0, 0], [0, 0], [0, size[1] - w], [0, 0]]))
        return ops.concatenate(parts, axis=1)

    def compute_output_shape(self, input_shapes):
        (b, h, w, c), rows = input_shapes[0], input_shapes[0][1]
        if self.strides is None:
            return (b, h, w, None if c is None else c * len(input_shapes))
        if h is not None:
            rows = h + sum(head_size((h,), s)[0] for s in self.strides)
        return (b, rows, w, c)

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


def _packer(model):
    """``model``'s ``PackHeads`` layer, or None."""
    try:
        return model.get_layer(OUTPUTS)
    except ValueError:
        return None


def strides(model):
    """The strides of the auxiliary heads ``model``'s output packs (empty: none)."""
    layer = _packer(model)
    if layer is None:
        return []
    if layer.strides is None:
        raise ModelConfigError(f"{model.name}: {OLDER}")
    return list(layer.strides)


def heads(model):
    """How many predictions ``model``'s output packs: 1 + its auxiliary heads."""
    layer = _packer(model)
    return 1 if layer is None else len(layer.input)


def inference_model(model):
    """``model`` with its main output alone (itself when it has no auxiliary heads)."""
    if heads(model) == 1:
        return model
    main = model.get_layer(OUTPUTS).input[0]
    return keras.Model(model.input, main, name=model.name)
