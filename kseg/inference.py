"""Predictors (a Keras model, an ensemble, test-time augmentation: one interface), loading one
by run folder or file, and the evaluate / predict library calls."""

from pathlib import Path

import numpy as np
from PIL import Image

from kseg import metrics as kmetrics
from kseg.resize import resize_image, resize_labels
from kseg.runtime import colourize, overlay_image
from kseg.errors import ConfigError, InputError, NotFoundError


class Predictor:
    """What evaluate, predict, TTA and the reports need of a model: ``classes``, ``input_size``
    ((height, width), or None for any size), ``config`` (the run's ``TrainConfig``, or None),
    ``name``, ``predict_proba(images)`` (uint8 [N, H, W, 3] -> class probabilities
    [N, H, W, C], float32) and ``rebuilt(input_shape=, output_stride=)`` (the same weights at
    another input size or output stride). Keras models, ensembles and TTA all are one."""

    classes = ()
    input_size = None
    config = None
    name = ""

    def predict_proba(self, images):
        raise NotImplementedError

    def rebuilt(self, input_shape=None, output_stride=None):
        raise NotImplementedError

    def predict_labels(self, images):
        """Label maps [N, H, W] (uint8): the argmax of ``predict_proba``."""
        return np.argmax(self.predict_proba(images), axis=-1).astype(np.uint8)

    def training_size(self):
        """The size images are segmented at: the input size, else the run's training size."""
        size = self.input_size or (tuple(self.config.image_size) if self.config else None)
        if size is None:
            raise ConfigError(f"{self.name}: the model takes any size and has no run "
                              "configuration to say its training size")
        return size


class KerasPredictor(Predictor):
    """A Keras segmentation model (logits, or one sigmoid channel) with its run's configuration
    and class names; ``load`` opens one by run folder or ``.keras`` file."""

    def __init__(self, model, *, config=None, classes=None, name=None):
        self.model = model
        self.config = config
        self.name = str(name or model.name)
        num_classes = max(2, model.output.shape[-1])  # one channel: binary sigmoid
        if classes is None or len(classes) != num_classes:
            classes = [f"class_{i}" for i in range(num_classes)]
        self.classes = list(classes)

    @property
    def input_size(self):
        h, w = self.model.input.shape[1:3]
        return None if h is None or w is None else (int(h), int(w))

    def predict_proba(self, images):
        from kseg.tta import probabilities

        return probabilities(self.model.predict_on_batch(np.asarray(images)))

    def rebuilt(self, input_shape=None, output_stride=None):
        from kseg.models import rebuild

        if self.config is None:
            raise ConfigError(f"{self.name}: no run configuration beside it; cannot rebuild")
        model, _ = rebuild(self.model, self.config.model, self.config.model_options,
                           input_shape=input_shape, output_stride=output_stride)
        return KerasPredictor(model, config=self.config, classes=self.classes, name=self.name)


class TFLitePredictor(Predictor):
    """An exported ``.tflite`` file (beside its metadata.json), run by ``kseg.runtime``: what a
    device computes. A file that ends at the network's own stride has its probabilities brought
    to the input size bilinearly as MediaPipe's category mask does (``kseg.resize.mask_scores``),
    so ``kseg evaluate`` and ``kseg predict`` show what a client shows."""

    def __init__(self, path, num_threads=2):
        from kseg.runtime import Segmenter

        self.segmenter = Segmenter(path, num_threads=num_threads)
        model = self.segmenter.model
        self.classes = list(self.segmenter.classes)
        self.input_size = (model.height, model.width)
        self.name = str(model.path)

    def predict_proba(self, images):
        from kseg.resize import mask_scores

        model, n = self.segmenter.model, len(self.classes)
        out = []
        for image in np.asarray(images):
            y = model(image)
            if y.ndim == 2:  # a labels file: its argmax, as one-hot probabilities
                y = np.eye(n, dtype=np.float32)[np.clip(y, 0, n - 1)]
            elif model.output_size != self.input_size:
                y = mask_scores(y, self.input_size)
            out.append(y)
        return np.stack(out).astype(np.float32)

    def rebuilt(self, input_shape=None, output_stride=None):
        raise ConfigError(f"{self.name}: an exported file's graph is fixed (its input size and "
                          "output stride); give the run folder to rebuild the model")


def load(path):
    """The predictor of a run folder (its best checkpoint), a ``.keras`` file (with its run's
    configuration when it sits in a run folder) or an exported ``.tflite`` file
    (``TFLitePredictor``). Mixed-precision checkpoints are rebuilt in float32."""
    from kseg.models import load_model, rebuild
    from kseg.train.config import TrainConfig
    from kseg.train.rundir import RunDir

    path = Path(path)
    if path.suffix == ".tflite" and path.is_file():
        return TFLitePredictor(path)
    if path.is_dir():
        run = RunDir(path)
        if not run.exists:
            raise NotFoundError(f"{path}: not a kseg run folder (no config.json)")
        model_path = run.best_model_path()
    elif path.is_file():
        model_path = path
        run = RunDir(path.parent)  # a checkpoint inside a run folder keeps its run's config
    else:
        raise NotFoundError(f"{path}: no such run folder or model file")
    config = classes = None
    if run.exists:
        raw = run.config()
        config = TrainConfig.from_json(raw, where=str(run.file("config.json")))
        classes = list(raw["classes"])
    model = load_model(model_path, compile=False)
    if config is not None:
        model, _ = rebuild(model, config.model, config.model_options)
    return KerasPredictor(model, config=config, classes=classes, name=model_path)


class Ensemble(Predictor):
    """Several predictors scored as one: per pixel, the mean of their class probabilities (a
    sigmoid's one channel counts as two classes). All members must predict the same classes and
    take the same input size."""

    def __init__(self, members):
        members = list(members)
        if len(members) < 2:
            raise ConfigError("an ensemble needs at least two models")
        first = members[0]
        for m in members[1:]:
            if list(m.classes) != list(first.classes):
                raise ConfigError(f"{m.name} predicts {list(m.classes)}, {first.name} "
                                  f"{list(first.classes)}: not one ensemble")
        sizes = {m.input_size for m in members} - {None}
        if len(sizes) > 1:
            raise ConfigError("ensemble members take different input sizes: "
                              + ", ".join(f"{m.name} {m.input_size}" for m in members))
        self.members, self.config, self.classes = members, first.config, list(first.classes)
        self.name = f"ensemble of {len(members)}: " + " + ".join(str(m.name) for m in members)
        self.input_size = next(iter(sizes), None)

    def predict_proba(self, images):
        return np.mean([m.predict_proba(images) for m in self.members], axis=0,
                       dtype=np.float64).astype(np.float32)

    def rebuilt(self, input_shape=None, output_stride=None):
        return Ensemble([m.rebuilt(input_shape, output_stride) for m in self.members])


class TTAPredictor(Predictor):
    """``base`` under test-time augmentation ``tta`` (a ``kseg.tta.TTA``): each image's
    probabilities are the average over its transformed passes, mapped back."""

    def __init__(self, base, tta):
        self.base, self.tta = base, tta
        self.classes, self.config, self.input_size = base.classes, base.config, base.input_size
        self.name = f"{base.name} with TTA {tta}"

    def predict_proba(self, images):
        return np.stack([self.tta.predict_proba(self.base.predict_proba, im)
                         for im in np.asarray(images)])

    def rebuilt(self, input_shape=None, output_stride=None):
        return TTAPredictor(self.base.rebuilt(input_shape, output_stride), self.tta)


def with_tta(predictor, tta):
    """``predictor`` under ``tta`` (None: as it is). Rescaled passes, and quarter turns of a
    non-square input, need a model that takes any input size: it is rebuilt as one."""
    if tta is None:
        return predictor
    if predictor.input_size is not None and tta.needs_any_size_for(predictor.input_size):
        if predictor.config is None:
            raise ConfigError(f"{predictor.name}: TTA scales (and turns of a non-square input) "
                              "need a model of any input size, and this file has no run "
                              "configuration to rebuild it; use scales=1 without turns")
        predictor = predictor.rebuilt(input_shape=(None, None, 3))  # segmented at its run's size
    return TTAPredictor(predictor, tta)


def evaluate(predictor, source, image_size=None, batch_size=8, tta=None):
    """Scores of ``predictor`` on every example of ``source`` as ``kseg.metrics.scores`` plus the
    confusion matrix; ``tta``: a ``kseg.tta.TTA`` to average over transformed inputs.

    The protocol is the field's and the deployed model's: each image is resized (bilinear) to
    ``image_size`` (by default the model's input size, else its run's training size), segmented,
    and the label map is brought back (nearest) to the label's own resolution, where it is scored:
    mIoU on 720x960 labels is mIoU on 720x960 pixels. ``kseg predict`` and ``kseg.runtime`` give
    the same label maps."""
    image_size = image_size or predictor.training_size()
    if len(source.classes) != len(predictor.classes):
        raise ConfigError(f"{source.where} has {len(source.classes)} classes but the model "
                          f"predicts {len(predictor.classes)}")
    predictor = with_tta(predictor, tta)
    n = len(predictor.classes)
    cm = np.zeros((n, n), np.int64)
    batch, truths = [], []

    def flush():
        for p, truth in zip(predictor.predict_labels(np.stack(batch)), truths):
            cm[...] += kmetrics.confusion_matrix(truth, to_size(p, truth.shape), n,
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
    result["classes"] = list(predictor.classes)
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


def predict_labels(predictor, image, tta=None, native=False):
    """Label map ``[H, W]`` of a PIL image at its own size. By default the image is resized to the
    model's size (its input size, else its run's training size) and the labels brought back, as
    ``kseg.runtime`` and the exported files do; ``native`` runs a model of any input size (see
    ``Predictor.rebuilt``) at the image's own resolution (at most ``NATIVE_MAX_PIXELS``)."""
    rgb = image.convert("RGB")
    if native:
        if predictor.input_size is not None:
            raise ConfigError("native resolution needs a model of any input size "
                              "(predictor.rebuilt(input_shape=(None, None, 3)))")
        scale = min(1.0, (NATIVE_MAX_PIXELS / (rgb.width * rgb.height)) ** 0.5)
        size = (max(1, round(rgb.height * scale)), max(1, round(rgb.width * scale)))
    else:
        size = predictor.training_size()
    x = resize_image(np.asarray(rgb), size)
    labels = with_tta(predictor, tta).predict_labels(x[None])[0]
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


def predict_files(predictor, paths, out_dir, tta=None, native=False):
    """Write ``<stem>_mask.png`` (colours), ``<stem>_overlay.png`` and ``<stem>_labels.png`` (class
    indices) for every image; returns the written paths. By default at the model's size, as the
    exported files segment; ``native``: at each photo's own resolution."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if native and predictor.input_size is not None:
        predictor = predictor.rebuilt(input_shape=(None, None, 3))  # fully convolutional: any size
    written = []
    for path, stem in zip(paths, output_stems(paths)):
        path = Path(path)
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as exc:
            raise InputError(f"{path}: cannot read image ({exc})") from None
        labels = predict_labels(predictor, image, tta, native=native)
        n = len(predictor.classes)
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
