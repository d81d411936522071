"""Deploy-side runtime: run an exported kseg model with ai-edge-litert, numpy and pillow only.

This module never imports TensorFlow, so it runs on boards and in apps where TensorFlow is not
installed::

    from kseg.runtime import Segmenter
    seg = Segmenter("exported/camvid/model_int8.tflite")   # reads the folder's metadata.json
    labels = seg.segment("street.jpg")                      # [H, W] class indices, original size
    seg.overlay("street.jpg", labels).save("overlay.png")
"""

from pathlib import Path

import numpy as np
from PIL import Image

from kseg.contract import ContractError, check_embedded_labels, read_metadata
from kseg.resize import mask_scores, resize_image, resize_labels
from kseg.errors import ConfigError, InputError


def _interpreter(path, num_threads):
    from ai_edge_litert.interpreter import Interpreter

    from kseg.quiet import quiet_stderr  # only kseg's CLI turns it on: library callers see all

    with quiet_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    return interpreter


class TFLiteModel:
    """One .tflite file: uint8 ``[1, H, W, 3]`` in, float scores ``[1, H, W, C]`` or labels out."""

    def __init__(self, path, num_threads=2):
        self.path = Path(path)
        if not self.path.is_file():
            raise ContractError(f"{self.path}: no such file")
        try:
            self.interpreter = _interpreter(self.path, num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ContractError(f"{self.path}: not a loadable TFLite model ({exc})") from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ContractError(
                f"{self.path}: expected one input and one output, found {len(inputs)} and {len(outputs)}"
            )
        self.input, self.output = inputs[0], outputs[0]
        shape = tuple(int(d) for d in self.input["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or self.input["dtype"] != np.uint8:
            raise ContractError(
                f"{self.path}: input must be uint8 [1, H, W, 3], found {np.dtype(self.input['dtype']).name} {list(shape)}"
            )
        self.height, self.width = shape[1], shape[2]
        self.output_shape = tuple(int(d) for d in self.output["shape"])

    def __call__(self, image):
        """``image``: uint8 ``[H, W, 3]`` or ``[1, H, W, 3]`` at the model's size -> float32 scores
        ``[H, W, C]`` (dequantized) or int32 labels ``[H, W]``."""
        x = np.asarray(image)
        if x.ndim == 3:
            x = x[None]
        if x.shape != (1, self.height, self.width, 3) or x.dtype != np.uint8:
            raise ConfigError(
                f"{self.path}: expected uint8 [1, {self.height}, {self.width}, 3], got {x.dtype} {list(x.shape)}"
            )
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])[0]
        if y.ndim == 2:
            return y.astype(np.int32)
        scale, zero = self.output.get("quantization", (0.0, 0))
        if scale:
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    @property
    def output_size(self):
        """(height, width) of the file's output: the input size, or smaller for a file that ends
        at the network's own stride."""
        return self.output_shape[1], self.output_shape[2]

    def labels(self, image, size=None):
        """Label map ``[h, w]`` at ``size`` (default: the model's input size). Scores smaller
        than that (a file at the network's stride) are upsampled bilinearly first and the argmax
        taken there, as MediaPipe's ImageSegmenter computes its category mask
        (``kseg.resize.mask_scores``)."""
        y = self(image)
        if y.ndim == 2:
            return y
        size = tuple(size or (self.height, self.width))
        if y.shape[:2] != size and self.output_size != (self.height, self.width):
            y = mask_scores(y, size)
        return scores_to_labels(y)


def scores_to_labels(scores):
    """Class indices from per-pixel scores ``[..., C]``; a single channel is a binary task's
    sigmoid logit (class 1 where it is positive)."""
    scores = np.asarray(scores)
    if scores.shape[-1] == 1:
        return (scores[..., 0] > 0).astype(np.int32)
    return np.argmax(scores, axis=-1).astype(np.int32)


def palette(num_classes):
    """Distinct RGB colours per class (the PASCAL VOC bit-interleaving scheme), uint8 [C, 3]."""
    colours = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for i in range(num_classes):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[i] = (r, g, b)
    return colours


def colourize(labels, num_classes):
    """uint8 [H, W, 3] colour image of a label map; out-of-range labels (e.g. ignore) are white."""
    colours = np.concatenate([palette(num_classes), np.full((256 - num_classes, 3), 255, np.uint8)])
    return colours[np.clip(labels, 0, 255).astype(np.int64)]


def overlay_image(image, labels, num_classes, alpha=0.5):
    """Blend the colourized ``labels`` over ``image`` (both at the same size)."""
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, np.float32)
    colour = colourize(labels, num_classes).astype(np.float32)
    return Image.fromarray((base * (1 - alpha) + colour * alpha).astype(np.uint8))


class Segmenter:
    """An exported model ready for apps: any image in, label map at the image's own size out."""

    def __init__(self, path, num_threads=2):
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        self.metadata = read_metadata(folder)
        if path.is_dir():
            candidates = sorted(folder.glob("model_*.tflite"))
            if not candidates:
                raise ContractError(f"{folder}: no model_*.tflite file")
            preferred = [p for p in candidates if p.name == "model_float32.tflite"]
            path = (preferred or candidates)[0]
        self.model = TFLiteModel(path, num_threads=num_threads)
        self.classes = list(self.metadata["classes"])
        check_embedded_labels(path, self.classes)
        inp = self.metadata["input"]
        if (self.model.height, self.model.width) != (inp["height"], inp["width"]):
            raise ContractError(
                f"{path}: input is {self.model.height}x{self.model.width} but metadata says "
                f"{inp['height']}x{inp['width']}"
            )
        out = self.model.output_shape
        kind = self.metadata["output"]["kind"]
        binary = len(self.classes) == 2 and len(out) == 4 and out[3] == 1  # one sigmoid channel
        if kind == "scores" and (len(out) != 4 or (out[3] != len(self.classes) and not binary)):
            raise ContractError(
                f"{path}: output shape {list(out)} does not give scores for the "
                f"{len(self.classes)} classes in metadata.json"
            )
        if kind == "labels" and len(out) != 3:
            raise ContractError(f"{path}: metadata says labels but the output shape is {list(out)}")
        said = self.metadata["output"]
        expected = (said.get("height", inp["height"]), said.get("width", inp["width"]))
        if kind == "scores" and self.model.output_size != expected:
            raise ContractError(
                f"{path}: output is {out[1]}x{out[2]} but metadata says {expected[0]}x{expected[1]}")

    def _load(self, image):
        if isinstance(image, (str, Path)):
            try:
                with Image.open(image) as im:
                    return im.convert("RGB")
            except OSError as exc:
                raise InputError(f"{image}: cannot read image ({exc})") from None
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                lo, hi = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
                raise ConfigError(
                    f"image array is {image.dtype} (values {lo:g}..{hi:g}); the model takes uint8 "
                    "RGB 0..255. Convert it yourself, e.g. (x * 255).round().astype(np.uint8) for "
                    "floats in [0, 1], so that nothing is rescaled by guess")
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=-1)
            if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
                raise ConfigError(f"image array has shape {list(image.shape)}; expected [H, W], "
                                 "[H, W, 3] or [H, W, 4]")
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            return Image.fromarray(image).convert("RGB")
        return image.convert("RGB")

    def segment(self, image):
        """Label map ``[H, W]`` (int32) at the input image's original size."""
        im = self._load(image)
        resized = resize_image(np.asarray(im), (self.model.height, self.model.width))
        if self.model.output_size != (self.model.height, self.model.width):
            # scores at the network's stride: upsampled to the image itself, as MediaPipe does
            return self.model.labels(resized, size=(im.height, im.width))
        labels = self.model.labels(resized)
        return resize_labels(labels, (im.height, im.width)).astype(np.int32)

    def overlay(self, image, labels=None, alpha=0.5):
        im = self._load(image)
        labels = self.segment(im) if labels is None else labels
        return overlay_image(im, labels, len(self.classes), alpha)

    def colour_mask(self, labels):
        return Image.fromarray(colourize(labels, len(self.classes)))
