"""Loading a trained model by run folder or file, and the evaluate / predict library calls."""

from pathlib import Path

import numpy as np
from PIL import Image

from kseg import metrics as kmetrics
from kseg.resize import resize_image, resize_labels
from kseg.runtime import colourize, overlay_image, scores_to_labels
from kseg.errors import ConfigError, InputError, NotFoundError


class ModelRef:
    """A model named on the command line: a run folder (best checkpoint) or a ``.keras`` file."""

    def __init__(self, path):
        from kseg.models import load_model
        from kseg.train.config import TrainConfig
        from kseg.train.rundir import RunDir

        path = Path(path)
        self.config = None
        self.classes = None
        if path.is_dir():
            run = RunDir(path)
            if not run.exists:
                raise NotFoundError(f"{path}: not a kseg run folder (no config.json)")
            self.model_path = run.best_model_path()
        elif path.is_file():
            self.model_path = path
            run = RunDir(path.parent)  # a checkpoint inside a run folder keeps its run's config
        else:
            raise NotFoundError(f"{path}: no such run folder or model file")
        if run.exists:
            raw = run.config()
            self.config = TrainConfig.from_json(raw, where=str(run.file("config.json")))
            self.classes = list(raw["classes"])
        self.model = load_model(self.model_path, compile=False)
        if self.config is not None:  # mixed-precision checkpoints are evaluated in float32
            from kseg.models import rebuild

            self.model, _ = rebuild(self.model, self.config.model, self.config.model_options)
        num_classes = max(2, self.model.output.shape[-1])  # one channel: binary sigmoid
        if self.classes is None or len(self.classes) != num_classes:
            self.classes = [f"class_{i}" for i in range(num_classes)]

    def rebuilt(self, input_shape=None, output_stride=None):
        """A ``ModelRef`` whose model is rebuilt with another input shape ((None, None, 3): any
        size) and/or output stride, keeping the weights. Needs the run's configuration."""
        from kseg.models import rebuild

        if self.config is None:
            raise ConfigError(f"{self.model_path}: no run configuration beside it; cannot rebuild")
        clone = object.__new__(ModelRef)
        clone.__dict__.update(self.__dict__)
        clone.model, _ = rebuild(self.model, self.config.model, self.config.model_options,
                                 input_shape=input_shape, output_stride=output_stride)
        return clone

    @property
    def input_size(self):
        """(height, width) the model was built for, or None for any size."""
        h, w = self.model.input.shape[1:3]
        return None if h is None or w is None else (int(h), int(w))


class Ensemble:
    """Several trained models scored as one: per pixel, the mean of their class probabilities
    (a sigmoid's one channel counts as two classes). Stands in for a ``ModelRef``: its
    ``model.predict_on_batch`` returns log mean probabilities (softmax gives the mean back), so
    evaluation, prediction and TTA treat it as one model. All members must predict the same
    classes and take the same input size."""

    def __init__(self, refs):
        refs = list(refs)
        if len(refs) < 2:
            raise ConfigError("an ensemble needs at least two models")
        first = refs[0]
        for ref in refs[1:]:
            if list(ref.classes) != list(first.classes):
                raise ConfigError(f"{ref.model_path} predicts {list(ref.classes)}, "
                                 f"{first.model_path} {list(first.classes)}: not one ensemble")
        sizes = {ref.input_size for ref in refs} - {None}
        if len(sizes) > 1:
            raise ConfigError("ensemble members take different input sizes: "
                             + ", ".join(f"{r.model_path} {r.input_size}" for r in refs))
        self.refs, self.config, self.classes = refs, first.config, list(first.classes)
        self.model_path = " + ".join(str(r.model_path) for r in refs)
        self.model = self
        self.input_size = next(iter(sizes), None)

    def predict_on_batch(self, images):
        from kseg.tta import probabilities

        mean = np.mean([probabilities(r.model.predict_on_batch(images), np.float64)
                        for r in self.refs], axis=0)
        return np.log(np.maximum(mean, 1e-12)).astype(np.float32)

    def rebuilt(self, input_shape=None, output_stride=None):
        return Ensemble([r.rebuilt(input_shape, output_stride) for r in self.refs])


def for_tta(ref, tta):
    """``ref`` ready for ``tta``: rescaled passes, and quarter turns of a non-square input, need
    a model that takes any input size."""
    if tta is None or ref.input_size is None or not tta.needs_any_size_for(ref.input_size):
        return ref
    if ref.config is None:
        raise ConfigError(f"{ref.model_path}: TTA scales (and turns of a non-square input) need "
                         "a model of any input size, and this file has no run configuration to "
                         "rebuild it; use scales=1 without turns")
    return ref.rebuilt(input_shape=(None, None, 3))


def label_batch(ref, images, tta=None):
    """Label maps [N, H, W] for a uint8 batch, with test-time augmentation if ``tta`` is given."""
    if tta is None:
        return scores_to_labels(ref.model.predict_on_batch(images))
    return np.stack([tta.predict_labels(ref.model.predict_on_batch, im) for im in np.asarray(images)])


def evaluate(ref, source, image_size=None, batch_size=8, tta=None):
    """Scores of ``ref`` on every example of ``source`` as ``kseg.metrics.scores`` plus the
    confusion matrix; ``tta``: a ``kseg.tta.TTA`` to average over transformed inputs.

    The protocol is the field's and the deployed model's: each image is resized (bilinear) to
    ``image_size`` (by default the model's input size, else its run's training size), segmented,
    and the label map is brought back (nearest) to the label's own resolution, where it is scored:
    mIoU on 720x960 labels is mIoU on 720x960 pixels. ``kseg predict`` and ``kseg.runtime`` give
    the same label maps."""
    image_size = image_size or ref.input_size or (ref.config.image_size if ref.config else None)
    if image_size is None:
        raise ConfigError("the model takes any size; give --image-size to evaluate at")
    if len(source.classes) != len(ref.classes):
        raise ConfigError(
            f"{source.where} has {len(source.classes)} classes but the model predicts {len(ref.classes)}"
        )
    ref = for_tta(ref, tta)
    cm = np.zeros((len(ref.classes),) * 2, np.int64)
    batch, truths = [], []

    def flush():
        pred = label_batch(ref, np.stack(batch), tta)
        for p, truth in zip(pred, truths):
            cm[...] += kmetrics.confusion_matrix(truth, to_size(p, truth.shape), len(ref.classes),
                                                 source.ignore_index)
        batch.clear()
        truths.clear()

    for _, image, truth in source.iter_numpy():
        batch.append(resize_image(image, image_size))
        truths.append(np.asarray(truth))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    result = kmetrics.scores(cm)
    result["confusion_matrix"] = cm.tolist()
    result["classes"] = list(ref.classes)
    result["images"] = len(source)
    result["data"] = source.where
    result["protocol"] = (f"images resized to {image_size[0]}x{image_size[1]}, label maps scored "
                          "at each label's own resolution")
    if tta is not None:
        result["tta"] = str(tta)
    return result


def to_size(labels, size):
    """A label map brought (nearest) to ``size`` (h, w), int32, as kseg.runtime does."""
    return resize_labels(labels, size).astype(np.int32)


# kseg predict --native segments at the photo's own resolution; beyond this many pixels the photo
# is scaled down to it first (a 12-megapixel photo through a full-resolution network would need
# tens of GB of activations)
NATIVE_MAX_PIXELS = 4_000_000


def predict_labels(ref, image, tta=None, native=False):
    """Label map ``[H, W]`` of a PIL image at its own size. By default the image is resized to the
    model's size (its input size, else its run's training size) and the labels brought back, as
    ``kseg.runtime`` and the exported files do; ``native`` runs a model of any input size (see
    ``ModelRef.rebuilt``) at the image's own resolution (at most ``NATIVE_MAX_PIXELS``)."""
    rgb = image.convert("RGB")
    if native:
        if ref.input_size is not None:
            raise ConfigError("native resolution needs a model of any input size "
                             "(ref.rebuilt(input_shape=(None, None, 3)))")
        scale = min(1.0, (NATIVE_MAX_PIXELS / (rgb.width * rgb.height)) ** 0.5)
        size = (max(1, round(rgb.height * scale)), max(1, round(rgb.width * scale)))
    else:
        size = ref.input_size or (ref.config.image_size if ref.config else None)
        if size is None:
            raise ConfigError(f"{ref.model_path}: the model takes any size and has no run "
                             "configuration to say its training size; use native resolution")
    x = resize_image(np.asarray(rgb), size)
    labels = label_batch(ref, x[None], tta)[0]
    return to_size(labels, (rgb.height, rgb.width)).astype(np.uint8)


def output_stems(paths):
    """A distinct output name for each input path: its stem, or, where stems collide
    (``a/x.jpg b/x.png``), the stem with its parent folders and extension."""
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    out = []
    for p, stem in zip(paths, stems):
        if stems.count(stem) == 1:
            out.append(stem)
            continue
        parts = [q for q in p.resolve().parts[-2:-1] if q not in ("/", "")]
        out.append("_".join([*parts, stem, p.suffix.lstrip(".")]))
    seen = {}
    for i, name in enumerate(out):  # still equal (the same file twice): number them
        if name in seen:
            seen[name] += 1
            out[i] = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
    return out


def predict_files(ref, paths, out_dir, tta=None, native=False):
    """Write ``<stem>_mask.png`` (colours), ``<stem>_overlay.png`` and ``<stem>_labels.png`` (class
    indices) for every image; returns the written paths. By default at the model's size, as the
    exported files segment; ``native``: at each photo's own resolution."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if native and ref.input_size is not None:
        ref = ref.rebuilt(input_shape=(None, None, 3))  # fully convolutional: any size
    written = []
    for path, stem in zip(paths, output_stems(paths)):
        path = Path(path)
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as exc:
            raise InputError(f"{path}: cannot read image ({exc})") from None
        labels = predict_labels(ref, image, tta, native=native)
        n = len(ref.classes)
        targets = {
            out_dir / f"{stem}_mask.png": Image.fromarray(colourize(labels, n)),
            out_dir / f"{stem}_overlay.png": overlay_image(image, labels, n),
            out_dir / f"{stem}_labels.png": Image.fromarray(labels),
        }
        for target, img in targets.items():
            img.save(target)
            written.append(target)
    return written


def format_scores(result, title=None):
    """A per-class IoU / Dice table and the summary scores, as text."""
    lines = [title] if title else []
    width = max(12, *(len(c) for c in result["classes"]))
    lines.append(f"{'class':<{width}}  {'IoU':>7}  {'Dice':>7}")
    for name, iou, dice in zip(result["classes"], result["iou"], result["dice"]):
        fmt = lambda v: "    n/a" if v != v else f"{v:7.4f}"  # noqa: E731  (NaN: absent class)
        lines.append(f"{name:<{width}}  {fmt(iou)}  {fmt(dice)}")
    for key, label in (("miou", "mIoU"), ("mean_dice", "mean Dice"), ("fwiou", "fwIoU"),
                       ("pixel_accuracy", "pixel acc."), ("mean_accuracy", "mean acc.")):
        lines.append(f"{label:<{width}}  {result[key]:7.4f}")
    return "\n".join(lines)
