"""Model cost figures: parameters and multiply-adds of a built model."""

import keras


def multiply_adds(model):
    """Multiply-accumulate operations of one forward pass (convolutions only, which dominate)."""
    total = 0
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.Conv2DTranspose)):
            continue
        kh, kw = layer.kernel_size
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape  # each input pixel scatters a kernel
            total += h * w * kh * kw * cin * layer.filters
            continue
        _, h, w, cout = layer.output.shape
        cin = layer.input.shape[-1]
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            total += h * w * kh * kw * cin * layer.depth_multiplier
        else:
            total += h * w * kh * kw * (cin // layer.groups) * cout
    return int(total)
