"""Verification of exported files against the Keras model, streamed over validation images.

Every file is scored as a client shows it: a file that ends at the network's own stride has its
scores upsampled bilinearly to the image before the argmax (``kseg.runtime.TFLiteModel.labels``),
against the Keras model at full resolution."""

import numpy as np

from kseg import metrics as kmetrics
from kseg.runtime import TFLiteModel, scores_to_labels


def verify(model, files, dataset, num_classes, ignore_index):
    """Score the Keras ``model`` and each .tflite in ``files`` ({mode: path}) on ``dataset``
    (batches of uint8 images and labels). Returns {"keras": {...}, mode: {...}} with mIoU, pixel
    accuracy and, for files, the share of pixels whose argmax agrees with Keras."""
    runners = {mode: TFLiteModel(path) for mode, path in files.items()}
    cms = {name: np.zeros((num_classes, num_classes), np.int64) for name in ["keras", *runners]}
    agree = {mode: 0 for mode in runners}
    pixels = count = 0
    for images, labels in dataset:
        images, labels = np.asarray(images), np.asarray(labels)
        ref = scores_to_labels(model.predict_on_batch(images))
        cms["keras"] += kmetrics.confusion_matrix(labels, ref, num_classes, ignore_index)
        pixels += ref.size
        count += len(images)
        for mode, runner in runners.items():
            # a file at the network's stride: its scores upsampled (bilinear) to the labels, then
            # the argmax, as a client shows them
            pred = np.stack([runner.labels(im, size=ref.shape[1:3]) for im in images])
            cms[mode] += kmetrics.confusion_matrix(labels, pred, num_classes, ignore_index)
            agree[mode] += int(np.sum(pred == ref))
    out = {}
    for name, cm in cms.items():
        s = kmetrics.scores(cm)
        out[name] = {"miou": s["miou"], "pixel_accuracy": s["pixel_accuracy"], "iou": s["iou"]}
        if name in runners:
            out[name]["agreement"] = agree[name] / max(pixels, 1)
            out[name]["size_bytes"] = files[name].stat().st_size
    out["images"] = count
    return out
