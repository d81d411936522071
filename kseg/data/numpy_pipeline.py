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


class _BatchMaker:
    """Builds training batch ``i`` of ``epoch``: a pure function of (seed, epoch, i), so threads
    and worker processes give the same batches. Picklable (sent once to each worker process)."""

    def __init__(self, source, size, batch, seed, aug, cache):
        self.source, self.size, self.batch, self.seed, self.aug = source, size, batch, seed, aug
        self.examples = _Examples(source, size, cache)
        self.n, self.num_classes = len(source), len(source.classes)

    def order(self, epoch, salt=0):
        return np.random.default_rng([self.seed + salt, epoch]).permutation(self.n)

    def __call__(self, epoch, i):
        order, donors = self.order(epoch), self.order(epoch, 7919)
        images, labels = [], []
        for k in range(i * self.batch, (i + 1) * self.batch):
            image, label = self.examples(order[k])
            donor = self.examples(donors[k]) if self.aug.needs_donor else None
            image, label = self.aug.numpy_full(image, label, [epoch * self.n + k, self.seed],
                                               donor, self.num_classes)
            images.append(image)
            labels.append(label)
        return np.stack(images), np.stack(labels).astype(np.int32)


_WORKER_MAKER = None


def _init_worker(maker):
    global _WORKER_MAKER
    _WORKER_MAKER = maker
    cv2.setNumThreads(1)  # parallelism is across processes


def _worker_batch(epoch, i):
    return _WORKER_MAKER(epoch, i)


class TrainBatches(keras.utils.PyDataset):
    """Batches of one epoch at a time; ``on_epoch_end`` moves to the next epoch's order.

    ``processes`` (default: as many as ``workers`` when there are more than 2) builds batches in
    worker processes instead of threads. Augmentation is Python-heavy, and loader threads in the
    training process compete with the training loop for the GIL: on the 2-core CPU, 16
    augmenting threads slowed a small JAX train step 8x (18.8 -> 156 ms); on an H200 machine
    `kseg train --backend jax` ran DeepLabv3+ at 3 s per step beside 16 loader threads while the
    step alone took 45-75 ms (docs/benchmarks.md). Worker processes are started with ``spawn``
    (not a fork of a multithreaded JAX process) and keep their own example cache.
    """

    def __init__(self, source, image_size, batch_size, *, initial_epoch=0, seed=0,
                 augment=None, workers=None, cache=False, processes=None):
        workers = workers or default_workers()
        super().__init__(workers=workers, use_multiprocessing=False)
        self.source, self.size, self.batch = source, tuple(image_size), int(batch_size)
        self.n = len(source)
        self.steps = self.n // self.batch
        if self.steps < 1:
            raise ValueError(f"{source.where}: {self.n} training examples cannot fill one batch "
                             f"of {batch_size}; lower --batch-size")
        self.seed, self.epoch = int(seed), int(initial_epoch)
        self.aug = augment if isinstance(augment, Augmentation) else Augmentation(augment or "none")
        self.maker = _BatchMaker(source, self.size, self.batch, self.seed, self.aug, cache)
        self.examples = self.maker.examples
        self.processes = workers if processes is None and workers > 2 else (processes or 0)
        self._pool = None

    def __len__(self):
        return self.steps

    def _order(self, salt=0):
        return self.maker.order(self.epoch, salt)

    def __getitem__(self, i):
        if not self.processes:
            return self.maker(self.epoch, i)
        if self._pool is None:
            import multiprocessing

            # spawn: a fresh interpreter, not a fork of a multithreaded JAX/TF process
            self._pool = multiprocessing.get_context("spawn").Pool(
                self.processes, initializer=_init_worker, initargs=(self.maker,))
        return self._pool.apply(_worker_batch, (self.epoch, i))

    def close(self):
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def __del__(self):
        self.close()

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
