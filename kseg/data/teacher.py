"""A teacher's class probabilities for distillation, computed inside the input pipeline.

``kseg train --teacher FILE.tflite`` trains the student towards a bigger model's per-pixel
probabilities on the same augmented batch (``kseg.losses.Distillation``). The teacher is an
exported kseg file run through the TensorFlow-free runtime (``kseg.runtime.TFLiteModel``), so the
same code serves the TensorFlow and the JAX backend and every worker of a multi-worker run; the
teacher is frozen by construction (no gradient reaches it).

The teacher's probabilities travel with the labels as one target array ``[B, H, W, 1 + C]``:
channel 0 holds the class indices (ignored pixels keep ``ignore_index``), channels 1.. the
teacher's probabilities (``pack``). Every kseg loss and metric reads the labels from channel 0
(``kseg.losses.split_targets``), so validation batches, which carry labels only, need nothing
else.

Images are resized to the teacher's input size when it differs from the batch's (the one resize,
``kseg.resize``), and its probabilities brought back bilinearly (half-pixel centres) to the
batch's size, as are those of a file that ends at the network's own stride.

Only numpy, Pillow and ai-edge-litert: it runs where the loader runs.
"""

import threading
from pathlib import Path

import numpy as np

from kseg.errors import ConfigError, NotFoundError
from kseg.resize import resize_image, resize_scores


class Teacher:
    """``Teacher(path)(images)``: probabilities ``[B, H, W, C]`` (float32) of uint8 ``images``
    ``[B, H, W, 3]``. Safe to call from several loader threads (one interpreter per thread);
    picklable (each process opens the file itself)."""

    def __init__(self, path, num_classes=None, num_threads=1):
        self.path = Path(path)
        if not self.path.is_file() or self.path.suffix != ".tflite":
            raise NotFoundError(f"teacher {path}: no such .tflite file (export the teacher run "
                                "first: kseg export RUN --tflite)")
        self.num_threads = int(num_threads)
        self._local = threading.local()
        model = self._model()
        if len(model.output_shape) != 4:
            raise ConfigError(f"teacher {path}: outputs {list(model.output_shape)}, not per-class "
                              "probabilities [1, H, W, C] (export it with the default --output "
                              "scores)")
        self.num_classes = model.output_shape[-1]
        if num_classes is not None and int(num_classes) != self.num_classes:
            raise ConfigError(f"teacher {path} predicts {self.num_classes} classes, the training "
                              f"data has {num_classes}")
        self.input_size = (model.height, model.width)

    def __getstate__(self):
        return {"path": self.path, "num_threads": self.num_threads,
                "num_classes": self.num_classes, "input_size": self.input_size}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def _model(self):
        model = getattr(self._local, "model", None)
        if model is None:
            from kseg.runtime import TFLiteModel

            model = self._local.model = TFLiteModel(self.path, num_threads=self.num_threads)
        return model

    def __call__(self, images):
        images = np.asarray(images)
        model = self._model()
        out = np.empty(images.shape[:3] + (self.num_classes,), np.float32)
        for i, image in enumerate(images):
            probs = model(resize_image(image, self.input_size))
            if probs.shape[:2] != image.shape[:2]:
                probs = resize_scores(probs, image.shape[:2])
            out[i] = probs
        return out

    def pack(self, images, labels):
        """The training target ``[B, H, W, 1 + C]``: the labels, then the teacher's
        probabilities of ``images``."""
        return pack(labels, self(images))


def pack(labels, probabilities):
    """Labels ``[B, H, W]`` and probabilities ``[B, H, W, C]`` as one float32 target."""
    labels = np.asarray(labels, np.float32)[..., None]
    return np.concatenate([labels, np.asarray(probabilities, np.float32)], axis=-1)
