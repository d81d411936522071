"""Loading a trained model by run folder or file, and the evaluate / predict library calls."""

from pathlib import Path

import numpy as np
from PIL import Image

from kseg import metrics as kmetrics
from kseg.runtime import colourize, overlay_image, scores_to_labels


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
                raise FileNotFoundError(f"{path}: not a kseg run folder (no config.json)")
            self.model_path = run.best_model_path()
        elif path.is_file():
            self.model_path = path
            run = RunDir(path.parent)  # a checkpoint inside a run folder keeps its run's config
        else:
            raise FileNotFoundError(f"{path}: no such run folder or model file")
        if run.exists:
            raw = run.config()
            self.config = TrainConfig.from_json(raw)
            self.classes = list(raw["classes"])
        self.model = load_model(self.model_path, compile=False)
        if self.config is not None:  # mixed-precision checkpoints are evaluated in float32
            from kseg.models import float32_copy

            self.model = float32_copy(self.model, self.config.model, self.config.model_options)
        num_classes = max(2, self.model.output.shape[-1])  # one channel: binary sigmoid
        if self.classes is None or len(self.classes) != num_classes:
            self.classes = [f"class_{i}" for i in range(num_classes)]

    def rebuilt(self, input_shape=None, output_stride=None):
        """A ``ModelRef`` whose model is rebuilt with another input shape ((None, None, 3): any
        size) and/or output stride, keeping the weights. Needs the run's configuration."""
        from kseg.models import rebuild_trained

        if self.config is None:
            raise ValueError(f"{self.model_path}: no run configuration beside it; cannot rebuild")
        clone = object.__new__(ModelRef)
        clone.__dict__.update(self.__dict__)
        clone.model, _ = rebuild_trained(
            self.model, self.config.model, self.config.model_options,
            input_shape=input_shape or tuple(self.model.input.shape[1:]), output_stride=output_stride,
        )
        return clone

    @property
    def input_size(self):
        """(height, width) the model was built for, or None for any size."""
        h, w = self.model.input.shape[1:3]
        return None if h is None or w is None else (int(h), int(w))


def for_tta(ref, tta):
    """``ref`` ready for ``tta``: rescaled passes, and quarter turns of a non-square input, need
    a model that takes any input size."""
    if tta is None or ref.input_size is None or not tta.needs_any_size_for(ref.input_size):
        return ref
    if ref.config is None:
        raise ValueError(f"{ref.model_path}: TTA scales (and turns of a non-square input) need "
                         "a model of any input size, and this file has no run configuration to "
                         "rebuild it; use scales=1 without turns")
    return ref.rebuilt(input_shape=(None, None, 3))


def label_batch(ref, images, tta=None):
    """Label maps [N, H, W] for a uint8 batch, with test-time augmentation if ``tta`` is given."""
    if tta is None:
        return scores_to_labels(ref.model.predict_on_batch(images))
    return np.stack([tta.predict_labels(ref.model.predict_on_batch, im) for im in np.asarray(images)])


def evaluate(ref, source, image_size=None, batch_size=8, tta=None):
    """Scores of ``ref`` on every example of ``source`` (resized to ``image_size``, by default the
    model's input size) as ``kseg.metrics.scores`` plus the confusion matrix; ``tta``: a
    ``kseg.tta.TTA`` to average over transformed inputs."""
    from kseg.data.pipeline import evaluation_dataset

    image_size = image_size or ref.input_size or (ref.config.image_size if ref.config else None)
    if image_size is None:
        raise ValueError("the model takes any size; give --image-size to evaluate at")
    if len(source.classes) != len(ref.classes):
        raise ValueError(
            f"{source.where} has {len(source.classes)} classes but the model predicts {len(ref.classes)}"
        )
    ref = for_tta(ref, tta)
    cm = np.zeros((len(ref.classes),) * 2, np.int64)
    for images, labels in evaluation_dataset(source, image_size, batch_size):
        pred = label_batch(ref, images, tta)
        cm += kmetrics.confusion_matrix(np.asarray(labels), pred, len(ref.classes), source.ignore_index)
    result = kmetrics.scores(cm)
    result["confusion_matrix"] = cm.tolist()
    result["classes"] = list(ref.classes)
    result["images"] = len(source)
    result["data"] = source.where
    if tta is not None:
        result["tta"] = str(tta)
    return result


def predict_labels(ref, image, tta=None):
    """Label map ``[H, W]`` of a PIL image at its own size (resized to the model's input size if
    the model has a fixed one; ``ref.rebuilt((None, None, 3))`` predicts at the image's size)."""
    rgb = image.convert("RGB")
    size = ref.input_size
    x = np.asarray(rgb if size is None else rgb.resize((size[1], size[0]), Image.BILINEAR))
    labels = label_batch(ref, x[None], tta)[0].astype(np.uint8)
    if labels.shape != (rgb.height, rgb.width):
        labels = np.asarray(Image.fromarray(labels).resize(rgb.size, Image.NEAREST))
    return labels


def predict_files(ref, paths, out_dir, tta=None):
    """Write ``<stem>_mask.png`` (colours), ``<stem>_overlay.png`` and ``<stem>_labels.png`` (class
    indices) for every image; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if ref.config is not None and ref.input_size is not None:
        ref = ref.rebuilt(input_shape=(None, None, 3))  # fully convolutional: native resolution
    written = []
    for path in paths:
        path = Path(path)
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as exc:
            raise ValueError(f"{path}: cannot read image ({exc})") from None
        labels = predict_labels(ref, image, tta)
        n = len(ref.classes)
        targets = {
            out_dir / f"{path.stem}_mask.png": Image.fromarray(colourize(labels, n)),
            out_dir / f"{path.stem}_overlay.png": overlay_image(image, labels, n),
            out_dir / f"{path.stem}_labels.png": Image.fromarray(labels),
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
