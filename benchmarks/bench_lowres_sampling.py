"""What a file that ends at the network's stride loses, and why: the sampling grid or the softmax.

    python benchmarks/bench_lowres_sampling.py RUN [--checkpoint last] [--data ../shared/data/camvid]

Runs the run's Keras model on every val image and scores six masks against the labels: the
model's own full-resolution argmax; the argmax of its raw stride-level outputs upsampled to the
image four ways: probabilities or logits, sampled with corners aligned (MediaPipe Tasks' category
mask, ``kseg.resize.mask_scores``) or with half-pixel centres (how kseg's models upsample in
training, ``kseg.resize.resize_scores``); and what an export at ``--output-resolution model``
returns (the scores moved onto the corners-aligned grid, ``CornerGrid``, then the softmax) as
MediaPipe upsamples it. Prints each mIoU and its drop against full resolution.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.resize import mask_scores, resize_scores


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--checkpoint", default="last", choices=("best", "last"))
    ap.add_argument("--data", default="../shared/data/camvid", help="a CamVid folder (val/images, val/labels)")
    ap.add_argument("--classes", type=int, default=11)
    args = ap.parse_args()

    import keras

    from kseg.export import forms
    from kseg.models import load_model

    model = load_model(Path(args.run) / f"{args.checkpoint}.keras", compile=False)
    raw, stride = forms.model_stride_scores(model)
    low, _ = forms.at_model_resolution(model)
    h, w = (int(d) for d in low.output.shape[1:3])
    both = keras.Model(model.input, [model.output, raw, low.output])
    n = args.classes
    ways = ("full resolution", "probabilities, corners aligned (MediaPipe)",
            "logits, corners aligned", "probabilities, half-pixel", "logits, half-pixel",
            "export: grid-moved, softmax, corners aligned")
    confusion = {w: np.zeros((n, n), np.int64) for w in ways}
    images = sorted((Path(args.data) / "val" / "images").glob("*"))
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        label = np.asarray(Image.open(Path(args.data) / "val" / "labels" / f"{path.stem}.png"))
        full, logits, moved = (o[0] for o in both.predict(image[None], verbose=0))
        logits = logits[:h, :w]  # the part covering the image, as the export crops it
        size = image.shape[:2]
        probs = _softmax(logits)
        masks = (full.argmax(-1), mask_scores(probs, size).argmax(-1),
                 mask_scores(logits, size).argmax(-1), resize_scores(probs, size).argmax(-1),
                 resize_scores(logits, size).argmax(-1),
                 mask_scores(_softmax(moved), size).argmax(-1))
        keep = label < n
        for way, mask in zip(ways, masks):
            confusion[way] += np.bincount(label[keep].astype(np.int64) * n + mask[keep],
                                          minlength=n * n).reshape(n, n)
    print(f"{args.run} ({args.checkpoint}.keras), stride {stride}, {len(images)} val images")
    base = None
    for way, cm in confusion.items():
        iou = np.diag(cm) / np.maximum(cm.sum(0) + cm.sum(1) - np.diag(cm), 1)
        miou = float(np.mean(iou))
        base = miou if base is None else base
        print(f"{way:<45} mIoU {miou:.4f}  drop {100 * (base - miou):.2f} pts")


if __name__ == "__main__":
    main()
