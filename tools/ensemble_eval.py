"""Score several trained runs on their validation data, alone and as an ensemble (the mean of their
class probabilities): how much a second or third model would buy before anyone ships one.

    python tools/ensemble_eval.py runs/isbi-cpu2 runs/isbi-d3 runs/isbi-d4

All runs must predict the same classes; the first run's configuration names the validation data
and the size the images are scored at (the run's --image-size). Prints pixel accuracy, mIoU and
per-class IoU per model and for the ensemble, the same scores `kseg evaluate` gives one model.
"""

import argparse

import numpy as np


def probabilities(scores):
    """Per-pixel class probabilities from a model's output scores ``[..., C]`` (softmax; one
    channel is a binary task's sigmoid logit, returned as two channels), in float64: the
    ensemble's mean of several models."""
    from kseg.tta import probabilities as class_probabilities

    return class_probabilities(scores, np.float64)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders (or .keras files with a run beside them)")
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args(argv)

    from kseg import metrics
    from kseg.data.pipeline import evaluation_dataset
    from kseg.inference import ModelRef

    refs = [ModelRef(r) for r in args.runs]
    first = refs[0]
    if first.config is None:
        p.error(f"{args.runs[0]}: no run configuration to name the validation data")
    size = tuple(first.config.image_size)
    for run, ref in zip(args.runs, refs):
        if list(ref.classes) != list(first.classes):
            p.error(f"{run} predicts {list(ref.classes)}, {args.runs[0]} {list(first.classes)}")
        if ref.input_size not in (None, size):
            p.error(f"{run} takes {ref.input_size[0]}x{ref.input_size[1]} inputs, the scoring "
                    f"size is {size[0]}x{size[1]}")
    source = first.config.open_source("val")
    if len(source.classes) != len(first.classes):
        p.error(f"{source.where} has {len(source.classes)} classes, the models {len(first.classes)}")
    n = len(first.classes)
    names = list(args.runs) + [f"ensemble of {len(refs)}"]
    cms = [np.zeros((n, n), np.int64) for _ in names]
    for images, labels in evaluation_dataset(source, size, args.batch):
        labels = np.asarray(labels)
        probs = [probabilities(ref.model.predict_on_batch(images)) for ref in refs]
        for cm, prob in zip(cms, probs + [np.mean(probs, axis=0)]):
            cm += metrics.confusion_matrix(labels, prob.argmax(-1), n, source.ignore_index)
    print(f"{source.where}: {len(source)} images at {size[0]}x{size[1]}")
    print(f"{'model':<28} {'pixel acc':>9} {'mIoU':>7} " + " ".join(f"{c[:10]:>10}" for c in first.classes))
    for name, cm in zip(names, cms):
        s = metrics.scores(cm)
        print(f"{name:<28} {s['pixel_accuracy']:>9.4f} {s['miou']:>7.4f} "
              + " ".join(f"{v:>10.4f}" for v in s["iou"]))


if __name__ == "__main__":
    main()
