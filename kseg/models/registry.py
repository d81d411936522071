"""One registry for every model family: ``build(name, num_classes=..., input_shape=..., **options)``.

A family registers a builder function whose keyword arguments are its options. ``build`` rejects
unknown options by name before any layer is created, and builders validate their values early.
"""

import inspect
import json

from kseg.errors import KsegError

_BUILDERS = {}
_AUXILIARY = {}


class ModelConfigError(KsegError, ValueError):
    """A model name or option that cannot be built."""


def register(name, auxiliary=None):
    """Decorator: register ``fn(num_classes, input_shape, **options) -> keras.Model`` as ``name``.
    ``auxiliary``: ``{layer name: stride}`` of the features that carry auxiliary heads in
    training (``kseg.models.auxiliary``), where the family's paper trains with them."""

    def wrap(fn):
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = fn
        _AUXILIARY[name] = dict(auxiliary or {})
        return fn

    return wrap


def auxiliary_taps(name):
    """``{layer name: stride}`` of model ``name``'s auxiliary heads (empty: it has none)."""
    _get(name)
    return dict(_AUXILIARY[name])


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


def describe(name):
    """``(summary, {option: (default, meaning)})`` of model ``name``, from its builder's
    docstring (first paragraph, and the ``Args:`` section)."""
    doc = inspect.cleandoc(_get(name).__doc__ or "")
    summary = " ".join(doc.split("\n\n")[0].split())
    meanings, current = {}, None
    in_args = False
    for line in doc.splitlines():  # "Args:", then "    option: meaning" + indented continuation
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if stripped and not line.startswith(" "):
            break  # the next section
        head, _, rest = stripped.partition(":")
        if head.isidentifier() and line.startswith("    ") and not line.startswith("        "):
            current = head
            meanings[current] = rest.strip()
        elif stripped and current:
            meanings[current] += " " + stripped
    return summary, {opt: (default, meanings.get(opt, "")) for opt, default in options(name).items()}


def catalogue(name=None, width=100):
    """Text listing every model (or only ``name``): summary, and each ``-o`` option with its
    default and meaning (``kseg models``)."""
    import textwrap

    from kseg.models import backbones

    out = []
    for model in [name] if name else names():
        summary, opts = describe(model)
        out.append(model)
        out += textwrap.wrap(summary, width, initial_indent="  ", subsequent_indent="  ")
        for opt, (default, meaning) in opts.items():
            shown = default if isinstance(default, str) else json.dumps(default, separators=(",", ":"))
            head = f"  -o {opt}={shown}"
            out += textwrap.wrap(meaning or "(undocumented)", width, initial_indent=f"{head:<34} ",
                                 subsequent_indent=" " * 35)
        out.append("")
    out += textwrap.wrap(f"backbones (option backbone of the fcn and deeplab families): "
                         f"{', '.join(backbones.names())}; output strides: "
                         f"{', '.join(map(str, backbones.OUTPUT_STRIDES))}. Values are JSON "
                         "(-o separable=false, -o ppm_bins=[1,2,4]).", width)
    return "\n".join(out)


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


def is_mixed_precision(model):
    return any(str(getattr(layer.dtype_policy, "name", "float32")).startswith("mixed")
               for layer in model.layers)


def rebuild(model, name, options, *, input_shape=None, output_stride=None):
    """A trained ``model`` (built as ``name`` with ``options``) built again with its weights:
    at another ``input_shape`` ((None, None, 3): any size; default: its own), at another
    ``output_stride`` (DeepLab), and in float32 (a mixed-precision model is evaluated and
    exported in float32). Returns (model, options used); pretrained-weight loading is dropped
    from the options, since the trained weights are copied. Options that would change a weight's
    shape are refused. The model itself is returned when nothing would change."""
    import keras

    opts = dict(options)
    opts.pop("weights", None)
    if output_stride is not None:
        opts["output_stride"] = int(output_stride)
    shape = tuple(model.input.shape[1:]) if input_shape is None else tuple(input_shape)
    if (shape == tuple(model.input.shape[1:]) and output_stride is None
            and not is_mixed_precision(model)):
        return model, opts
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        new = build(name, num_classes=model.output.shape[-1], input_shape=shape, **opts)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    old_w, new_w = model.get_weights(), new.get_weights()
    if [w.shape for w in old_w] != [w.shape for w in new_w]:
        raise ModelConfigError(f"{name}: the new options change the weights; cannot reuse them")
    new.set_weights(old_w)
    return new, opts
