"""Export forms of a trained Keras model: the same weights, wired for where the file will run.

- ``at_model_resolution``: the graph ends at the network's own stride. The bilinear upsampling of
  the class scores to the input size and the crop that follows it are dropped, and the scores are
  cropped to ``ceil(H / stride)`` x ``ceil(W / stride)`` (the part that covers the image, when the
  network padded it). A client upsamples them to the image itself (MediaPipe Tasks: bilinear,
  then the argmax; kseg.runtime: ``kseg.resize.mask_scores``), so a file that ends here shows
  the same mask and skips the most expensive part of the graph. Those clients sample the scores
  with corners aligned, where the network learned half-pixel upsampling: read as they are, the
  scores would be shifted by up to half a score pixel (up to ``stride / 2`` image pixels), which
  cost CamVid's Fast-SCNN 0.6 mIoU point held out. So the graph ends with ``CornerGrid``: two
  small constant matrix products (``kseg.resize.corner_grid_matrix``) that move the scores onto
  the corners-aligned grid; the client's upsampling then follows the network's own within a
  fraction of a point (docs/results.md, camvid-fast).
- ``for_npu``: a graph an NPU compiler maps whole. The input is a float image of raw 0..255
  pixels (no uint8 -> float CAST in the graph: the full-integer file then takes uint8 pixels
  through its input quantization, the normalisation happening in the integer graph), and every
  bilinear resize of the network is computed as matrix products (``BilinearUpsample`` and
  ``ResizeToReference`` with ``matmul=True``: the same values, converted to FULLY_CONNECTED),
  because compilers such as Arm's Vela take RESIZE_BILINEAR only at 2x with half-pixel centres.
"""

import math

RESOLUTIONS = ("full", "model")


def _producer(tensor):
    """(layer, its input tensors) that produced ``tensor`` in a functional model."""
    layer, node_index, _ = tensor._keras_history  # noqa: SLF001  (Keras' public graph record)
    node = layer._inbound_nodes[node_index]  # noqa: SLF001
    return layer, list(node.input_tensors)


def model_stride_scores(model):
    """(scores tensor at the network's own stride, stride): walks back from ``model``'s output
    through its final crop and integer-factor upsamplings. Stride 1 (the output as it is) where
    the network ends at full resolution (U-Net)."""
    import keras

    from kseg.models.layers import BilinearUpsample, CropToReference

    tensor, stride = model.output, 1
    while True:
        layer, inputs = _producer(tensor)
        if isinstance(layer, CropToReference):
            tensor = inputs[0]
        elif isinstance(layer, BilinearUpsample):
            tensor, stride = inputs[0], stride * layer.factor
        elif isinstance(layer, keras.layers.UpSampling2D) and len(set(layer.size)) == 1:
            tensor, stride = inputs[0], stride * int(layer.size[0])
        else:
            return tensor, stride


def at_model_resolution(model):
    """(a model with ``model``'s input and layers that returns the class scores at the network's
    stride, cropped to the part covering the image; the stride). ``model`` itself (stride 1)
    when it already ends at full resolution."""
    import keras

    from kseg.models.layers import CornerGrid

    scores, stride = model_stride_scores(model)
    if stride == 1:
        return model, 1
    height, width = (int(d) for d in model.input.shape[1:3])
    h, w = math.ceil(height / stride), math.ceil(width / stride)
    extra_h, extra_w = int(scores.shape[1]) - h, int(scores.shape[2]) - w
    if extra_h or extra_w:
        scores = keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), name="crop_to_image",
                                         dtype="float32")(scores)
    scores = CornerGrid((height, width), stride, name="corner_grid", dtype="float32")(scores)
    return keras.Model(model.input, scores, name=f"{model.name}_at_stride{stride}"), stride


def output_size(model, resolution):
    """(height, width) of the scores an export at ``resolution`` returns."""
    if resolution == "full":
        return tuple(int(d) for d in model.input.shape[1:3])
    low, _ = at_model_resolution(model)
    return tuple(int(d) for d in low.output.shape[1:3])


def for_npu(model):
    """``model`` with the same weights rebuilt for a full-integer NPU file: a float32 input of raw
    0..255 pixels, and every bilinear resize as matrix products (see the module doc)."""
    import keras

    from kseg.models.layers import BilinearUpsample, ResizeToReference

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, (BilinearUpsample, ResizeToReference)):
            config["matmul"] = True
        return layer.__class__.from_config(config)

    shape = tuple(model.input.shape[1:])
    image = keras.Input(shape=shape, batch_size=1, dtype="float32", name="image")
    new = keras.models.clone_model(model, input_tensors=image, clone_function=clone)
    new.set_weights(model.get_weights())
    return new
