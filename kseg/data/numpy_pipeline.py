"""The TensorFlow-free input path (``keras.utils.PyDataset``) used when Keras runs on JAX.

Same contract as ``kseg.data.pipeline``: the training order and augmentation are functions of
(seed, epoch, position), so a resumed run sees the batches the uninterrupted one would have.
Examples are decoded with PIL and resized with OpenCV (bilinear image, nearest label) in worker
threads.
"""

import os

import cv2
import keras
import numpy as np

from kseg.data.augment import Augmentation


def resize_pair_numpy(image, label, size):
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] != (h, w):
        interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
        image = cv2.resize(image, (w, h), interpolation=interp)
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def default_workers():
    """Loader threads: one per core, at least 2 (OpenCV and PIL release the GIL)."""
    return max(2, min(16, os.cpu_count() or 2))


class _Examples:
    """Resized examples of a source, decoded once when ``cache`` is set (a few hundred MB for
    CamVid's 367 images)."""

    def __init__(self, source, size, cache):
        self.source, self.size, self.cache = source, size, {} if cache else None

    def __call__(self, index):
        index = int(index)
        if self.cache is not None and index in self.cache:
            image, label = self.cache[index]
            return image.copy(), label.copy()  # augmentation may write in place
        pair = resize_pair_numpy(*self.source.load_numpy(index), self.size)
        if self.cache is not None:
            self.cache[index] = pair
        return pair


class TrainBatches(keras.utils.PyDataset):
    """Batches of one epoch at a time; ``on_epoch_end`` moves to the next epoch's order."""

    def __init__(self, source, image_size, batch_size, *, initial_epoch=0, seed=0,
                 augment=None, workers=None, cache=False):
        super().__init__(workers=workers or default_workers(), use_multiprocessing=False)
        self.source, self.size, self.batch = source, tuple(image_size), int(batch_size)
        self.examples = _Examples(source, self.size, cache)
        self.n = len(source)
        self.steps = self.n // self.batch
        if self.steps < 1:
            raise ValueError(f"{source.where}: {self.n} training examples cannot fill one batch "
                             f"of {batch_size}; lower --batch-size")
        self.seed, self.epoch = int(seed), int(initial_epoch)
        self.aug = augment if isinstance(augment, Augmentation) else Augmentation(augment or "none")
        self.num_classes = len(source.classes)

    def __len__(self):
        return self.steps

    def _order(self, salt=0):
        return np.random.default_rng([self.seed + salt, self.epoch]).permutation(self.n)

    def __getitem__(self, i):
        order, donors = self._order(), self._order(7919)
        images, labels = [], []
        for k in range(i * self.batch, (i + 1) * self.batch):
            image, label = self.examples(order[k])
            donor = self.examples(donors[k]) if self.aug.needs_donor else None
            image, label = self.aug.numpy_full(image, label, [self.epoch * self.n + k, self.seed],
                                               donor, self.num_classes)
            images.append(image)
            labels.append(label)
        return np.stack(images), np.stack(labels).astype(np.int32)

    def on_epoch_end(self):
        self.epoch += 1


class EvalBatches(keras.utils.PyDataset):
    def __init__(self, source, image_size, batch_size, workers=None, cache=False):
        super().__init__(workers=workers or default_workers(), use_multiprocessing=False)
        self.source, self.size, self.batch = source, tuple(image_size), int(batch_size)
        self.examples = _Examples(source, self.size, cache)

    def __len__(self):
        return -(-len(self.source) // self.batch)

    def __getitem__(self, i):
        pairs = [self.examples(k) for k in range(i * self.batch, min(len(self.source), (i + 1) * self.batch))]
        return (np.stack([p[0] for p in pairs]),
                np.stack([p[1] for p in pairs]).astype(np.int32))
