"""Training batches as numpy arrays, built without Keras or TensorFlow (so loader worker
processes import only numpy, OpenCV, PIL and kseg.data). Used by ``kseg.data.numpy_pipeline``."""

import os

import cv2
import numpy as np


def resize_pair_numpy(image, label, size):
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] != (h, w):
        interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
        image = cv2.resize(image, (w, h), interpolation=interp)
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def epoch_size(source, batch_size, repeat=1):
    """(examples drawn per epoch, full batches per epoch) when every example of ``source`` is
    drawn ``repeat`` times per epoch; a clear error when they cannot fill one batch."""
    n, repeat = len(source), int(repeat)
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    steps = n * repeat // int(batch_size)
    if steps < 1:
        raise ValueError(f"{source.where}: {n} training examples"
                         + (f" drawn {repeat} times" if repeat > 1 else "")
                         + f" cannot fill one batch of {batch_size}; lower --batch-size or raise "
                         "--repeat")
    return n * repeat, steps


def default_workers():
    """Loader threads: one per core, at least 2 (OpenCV and PIL release the GIL)."""
    return max(2, min(16, os.cpu_count() or 2))


class Examples:
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


class BatchMaker:
    """Builds training batch ``i`` of ``epoch``: a pure function of (seed, epoch, i), so threads
    and worker processes give the same batches. Picklable (sent once to each worker process)."""

    def __init__(self, source, size, batch, seed, aug, cache, repeat=1):
        self.source, self.size, self.batch, self.seed, self.aug = source, size, batch, seed, aug
        self.examples = Examples(source, size, cache)
        self.n, self.num_classes = len(source), len(source.classes)
        self.n_epoch = self.n * int(repeat)  # examples per epoch: each one ``repeat`` times

    def order(self, epoch, salt=0):
        return np.random.default_rng([self.seed + salt, epoch]).permutation(self.n_epoch) % self.n

    def __call__(self, epoch, i):
        order, donors = self.order(epoch), self.order(epoch, 7919)
        images, labels = [], []
        for k in range(i * self.batch, (i + 1) * self.batch):
            image, label = self.examples(order[k])
            donor = self.examples(donors[k]) if self.aug.needs_donor else None
            image, label = self.aug.numpy_full(image, label, [epoch * self.n_epoch + k, self.seed],
                                               donor, self.num_classes)
            images.append(image)
            labels.append(label)
        return np.stack(images), np.stack(labels).astype(np.int32)


_WORKER_MAKER = None


def init_worker(maker):
    global _WORKER_MAKER
    _WORKER_MAKER = maker
    cv2.setNumThreads(1)  # parallelism is across processes


def worker_batch(epoch, i):
    return _WORKER_MAKER(epoch, i)
