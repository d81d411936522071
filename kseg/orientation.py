"""Does this dataset have an up and a left? Two checks before choosing flips and quarter turns as
augmentation (or test-time augmentation):

1. Label alignment: for each class, the mean image intensity inside the class minus outside it,
   with the label map shifted by (dy, dx) pixels. The most contrasting shift is where the labels
   sit on the image; a best shift other than (0, 0) means the annotation is offset from the image
   in the image's own frame — an offset that flips and turns point in a different direction in
   every training example, so no model trained with them can learn it.
2. A trained run scored on its validation data under each of the 8 symmetries of the square
   (the input mirrored and/or turned, the prediction mapped back): a model that has learned
   nothing frame-bound scores about the same under all 8.
3. Where that run's wrong pixels lie: the share within 1, 2, 3 and 5 pixels of a label boundary
   (mostly on the boundary: what is left is where exactly a boundary is drawn).

    kseg orientation runs/isbi-frame                # all three checks, the run's val data
    kseg orientation runs/isbi-frame --class membrane --split train --no-model --per-image

The first check reads the data only (no model is run).
"""

import logging
import numpy as np

from kseg.errors import ConfigError

logger = logging.getLogger(__name__)


def alignment_table(images, labels, class_index, shift, ignore_index=None):
    """``[2*shift+1, 2*shift+1]``: mean intensity of the pixels labelled ``class_index`` minus the
    mean of the rest, with the label maps rolled by (dy, dx) = (row - shift, col - shift); a
    ``shift``-pixel frame is left out so no rolled-in pixels count. ``images`` [N, H, W(, C)],
    ``labels`` [N, H, W]."""
    images = np.asarray(images, np.float64)
    if images.ndim == 4:
        images = images.mean(-1)
    labels = np.asarray(labels)
    inner = (slice(None), slice(shift, -shift or None), slice(shift, -shift or None))
    x = images[inner]
    table = np.zeros((2 * shift + 1, 2 * shift + 1))
    for i, dy in enumerate(range(-shift, shift + 1)):
        for j, dx in enumerate(range(-shift, shift + 1)):
            rolled = np.roll(labels, (dy, dx), axis=(1, 2))[inner]
            keep = rolled != ignore_index if ignore_index is not None else np.ones_like(rolled, bool)
            inside = (rolled == class_index) & keep
            outside = (rolled != class_index) & keep
            if not inside.any() or not outside.any():
                raise ConfigError(f"class {class_index} is absent (or everywhere) in the labels")
            table[i, j] = x[inside].mean() - x[outside].mean()
    return table


def subpixel_peak(table):
    """(dy, dx) of the strongest entry of an ``alignment_table``, refined to a fraction of a pixel
    by a parabola through it and its two neighbours along each axis (whole pixels at the edge)."""
    t = np.abs(np.asarray(table, np.float64))
    shift = t.shape[0] // 2
    i, j = np.unravel_index(np.argmax(t), t.shape)

    def refine(lo, mid, hi):
        curve = lo - 2 * mid + hi
        return 0.0 if curve == 0 else 0.5 * (lo - hi) / curve

    dy = i - shift + (refine(t[i - 1, j], t[i, j], t[i + 1, j]) if 0 < i < t.shape[0] - 1 else 0.0)
    dx = j - shift + (refine(t[i, j - 1], t[i, j], t[i, j + 1]) if 0 < j < t.shape[1] - 1 else 0.0)
    return dy, dx


def boundary_error_shares(labels, pred, ignore_index=None, limits=(1, 2, 3, 5)):
    """``{k: share of the wrong pixels at most k pixels from a label boundary}`` (distance from a
    pixel to the nearest pixel labelled otherwise; ignored pixels are neither wrong nor a
    boundary) and the error rate, over label maps ``labels`` and predictions ``pred`` [N, H, W]."""
    from scipy import ndimage

    labels, pred = np.asarray(labels), np.asarray(pred)
    wrong, near = 0, {k: 0 for k in limits}
    counted = 0
    for lab, prd in zip(labels, pred):
        keep = lab != ignore_index if ignore_index is not None else np.ones(lab.shape, bool)
        dist = np.full(lab.shape, np.inf)  # no other label in the image: no boundary to be near
        present = np.unique(lab[keep])
        for c in present if len(present) > 1 else ():
            inside = lab == c
            # ignored pixels are not a boundary: distances run to the nearest other label
            dist[inside] = ndimage.distance_transform_edt(inside | ~keep)[inside]
        bad = (lab != prd) & keep
        wrong += bad.sum()
        counted += keep.sum()
        for k in limits:
            near[k] += (bad & (dist <= k)).sum()
    return {k: (near[k] / wrong if wrong else 0.0) for k in limits}, (wrong / counted if counted else 0.0)


def symmetry_labels(predict, images):
    """``{(mirrored, quarter_turns): label maps [N, H, W]}`` for the 8 symmetries of the square:
    each image transformed as ``kseg.tta.Pass`` does, predicted, the probabilities mapped back onto
    the original grid. ``predict`` maps a uint8 batch [N, H, W, 3] to class probabilities [N, H, W, C] (square
    images)."""
    from kseg.tta import TTA

    out = {}
    for step in TTA(flip=True, turns=True).passes():
        scores = predict(np.stack([step.forward(im) for im in images]))
        out[(step.flip, step.quarter)] = np.stack(
            [step.inverse(np.asarray(s, np.float32), im.shape[:2])[0].argmax(-1)
             for s, im in zip(scores, images)])
    return out


def symmetry_scores(predicted, labels, num_classes, ignore_index):
    """``{(mirrored, quarter_turns): kseg.metrics.scores}`` of ``symmetry_labels``' output."""
    from kseg import metrics

    return {key: metrics.scores(metrics.confusion_matrix(labels, pred, num_classes, ignore_index))
            for key, pred in predicted.items()}


def report(run, cls=None, shift=2, split="val", batch=1, no_model=False, per_image=False,
           log=logger.info):
    """The three checks above for run folder ``run``, printed with ``log``. Raises ValueError for
    a class the data does not have, or a symmetry check on non-square images."""
    from kseg.data.pipeline import evaluation_dataset
    from kseg.inference import load

    ref = load(run)
    if ref.config is None:
        raise ConfigError(f"{run}: no run configuration to name the validation data")
    size = tuple(ref.config.image_size)
    source = ref.config.open_source(split)
    classes = list(source.classes)
    if cls is not None and cls not in classes:
        raise ConfigError(f"class {cls!r}: not one of {classes}")
    if not no_model and size[0] != size[1]:
        raise ConfigError("the symmetry check turns the input by quarter turns: square images "
                         "only (or use the alignment check alone)")
    batches = list(evaluation_dataset(source, size, 8))
    images = np.concatenate([np.asarray(b[0]) for b in batches])
    labels = np.concatenate([np.asarray(b[1]) for b in batches])
    log(f"{source.where}: {len(images)} images at {size[0]}x{size[1]}")

    for c in [cls] if cls else classes:
        t = alignment_table(images, labels, classes.index(c), shift, source.ignore_index)
        dy, dx = subpixel_peak(t)
        log(f"\n{c}: mean intensity inside minus outside, label rolled by (dy rows, dx columns); "
            f"strongest at dy {dy:+.2f}, dx {dx:+.2f} (parabola through the peak)")
        log("dy\\dx " + " ".join(f"{d:>7d}" for d in range(-shift, shift + 1)))
        for i, row in enumerate(t):
            log(f"{i - shift:>5d} " + " ".join(f"{v:>7.2f}" for v in row))
        if per_image:
            peaks = []
            for k in range(len(images)):
                try:
                    peaks.append(subpixel_peak(alignment_table(
                        images[k:k + 1], labels[k:k + 1], classes.index(c), shift,
                        source.ignore_index)))
                except ValueError:  # the class is absent from (or fills) this image
                    continue
            if peaks:
                dys, dxs = np.array(peaks).T
                log(f"per image ({len(peaks)} with the class; a peak at +-{shift} is on the "
                    f"edge, raise --shift): dy {dys.min():+.2f} .. {dys.max():+.2f}, dx "
                    f"{dxs.min():+.2f} .. {dxs.max():+.2f} ("
                    + ", ".join(f"{a:+.2f}/{b:+.2f}" for a, b in peaks) + ")")
    if no_model:
        return

    def predict(x):
        return np.concatenate([ref.predict_proba(x[i:i + batch])
                               for i in range(0, len(x), batch)])

    predicted = symmetry_labels(predict, images)
    shares, rate = boundary_error_shares(labels, predicted[(False, 0)], source.ignore_index)
    log(f"\n{run}: {rate:.4f} of the pixels wrong; share of them within k pixels of a "
        "label boundary: " + ", ".join(f"{k}: {v:.3f}" for k, v in shares.items()))
    scores = symmetry_scores(predicted, labels, len(classes), source.ignore_index)
    log(f"\n{run} under the 8 symmetries (input transformed, prediction mapped back)")
    log(f"{'mirrored':>8} {'turns':>5} {'pixel acc':>9} {'mIoU':>7} "
        + " ".join(f"{c[:10]:>10}" for c in classes))
    for (flip, quarter), s in scores.items():
        log(f"{'yes' if flip else 'no':>8} {quarter:>5d} {s['pixel_accuracy']:>9.4f} "
            f"{s['miou']:>7.4f} " + " ".join(f"{v:>10.4f}" for v in s["iou"]))
