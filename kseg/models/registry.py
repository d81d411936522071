"""One registry for every model family: ``build(name, num_classes=..., input_shape=..., **options)``.

A family registers a builder function whose keyword arguments are its options. ``build`` rejects
unknown options by name before any layer is created, and builders validate their values early.
"""

import inspect

_BUILDERS = {}


class ModelConfigError(ValueError):
    """A model name or option that cannot be built."""


def register(name):
    """Decorator: register ``fn(num_classes, input_shape, **options) -> keras.Model`` as ``name``."""

    def wrap(fn):
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = fn
        return fn

    return wrap


def names():
    """Registered model names, sorted."""
    return sorted(_BUILDERS)


def options(name):
    """The options of model ``name`` and their defaults."""
    fn = _get(name)
    sig = inspect.signature(fn)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name not in ("num_classes", "input_shape") and p.kind == p.KEYWORD_ONLY
    }


def _get(name):
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ModelConfigError(
            f"unknown model {name!r}; available: {', '.join(names())}"
        ) from None


def build(name, *, num_classes, input_shape=(None, None, 3), **opts):
    """Build model ``name`` for ``num_classes`` classes; inputs are uint8 RGB ``input_shape``."""
    fn = _get(name)
    known = options(name)
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise ModelConfigError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; "
            f"its options are: {', '.join(sorted(known)) or 'none'}"
        )
    if int(num_classes) < 1:
        raise ModelConfigError(f"num_classes must be at least 1, got {num_classes}")
    input_shape = tuple(None if d is None else int(d) for d in input_shape)
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ModelConfigError(
            f"input_shape must be (height, width, 3) for uint8 RGB input, got {input_shape}"
        )
    return fn(num_classes=int(num_classes), input_shape=input_shape, **opts)


def rebuild(model, name, *, num_classes, input_shape=(None, None, 3), **opts):
    """Model ``name`` built with new options (e.g. another ``output_stride``, or any input size)
    and given the weights of ``model``; the options must not change any weight's shape."""
    new = build(name, num_classes=num_classes, input_shape=input_shape, **opts)
    old_w = model.get_weights()
    new_w = new.get_weights()
    if [w.shape for w in old_w] != [w.shape for w in new_w]:
        raise ModelConfigError(f"{name}: the new options change the weights; cannot reuse them")
    new.set_weights(old_w)
    return new


def rebuild_trained(model, name, options, *, input_shape, output_stride=None):
    """A trained ``model`` (built as ``name`` with ``options``) rebuilt at ``input_shape`` and, if
    given, another ``output_stride``, with its trained weights. Returns (model, options used);
    pretrained-weight loading is dropped from the options since the trained weights are copied."""
    opts = dict(options)
    opts.pop("weights", None)
    if output_stride is not None:
        opts["output_stride"] = int(output_stride)
    new = rebuild(model, name, num_classes=model.output.shape[-1], input_shape=input_shape, **opts)
    return new, opts


def is_mixed_precision(model):
    return any(str(getattr(layer.dtype_policy, "name", "float32")).startswith("mixed")
               for layer in model.layers)


def float32_copy(model, name, options):
    """``model`` itself, or, when it was trained with a mixed-precision policy, the same model
    rebuilt in float32 with its weights (for evaluation and export)."""
    if not is_mixed_precision(model):
        return model
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        new, _ = rebuild_trained(model, name, options, input_shape=tuple(model.input.shape[1:]))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return new
