"""The TensorFlow-free input path (``keras.utils.PyDataset``) used when Keras runs on JAX.

Same contract as ``kseg.data.pipeline``: the training order and augmentation are functions of
(seed, epoch, position), so a resumed run sees the batches the uninterrupted one would have.
Examples are decoded with PIL and resized with OpenCV (bilinear image, nearest label) in worker
threads, or worker processes (``kseg.data.batches``).
"""

import os

import keras
import numpy as np

from kseg.data.augment import Augmentation
from kseg.data.batches import BatchMaker, Examples, default_workers, init_worker, worker_batch


class TrainBatches(keras.utils.PyDataset):
    """Batches of one epoch at a time; ``on_epoch_end`` moves to the next epoch's order.

    ``processes`` (default: CPU cores - 2 on machines with more than 4 cores, else none) builds
    batches in worker processes instead of threads. Augmentation is Python-heavy, and loader
    threads in the training process compete with the training loop for the GIL: on the 2-core CPU,
    16 augmenting threads slowed a small JAX train step 11x (`tools/bench_jax_train.py
    --contention 16`); on an H200 machine `kseg train --backend jax` ran DeepLabv3+ at 3 s per
    step beside 16 loader threads while the step alone took 45-75 ms (docs/benchmarks.md).
    Processes only help where cores are spare (16 of them on 2 cores: 47x slower), hence the
    default. They are started with ``spawn`` (not a fork of a multithreaded JAX process), import
    no Keras, and keep their own example cache.
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
        self.maker = BatchMaker(source, self.size, self.batch, self.seed, self.aug, cache)
        self.examples = self.maker.examples
        if processes is None:  # spare cores for the training process itself
            cores = os.cpu_count() or 2
            processes = cores - 2 if cores > 4 else 0
        self.processes = int(processes)
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
                self.processes, initializer=init_worker, initargs=(self.maker,))
        return self._pool.apply(worker_batch, (self.epoch, i))

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
        self.examples = Examples(source, self.size, cache)

    def __len__(self):
        return -(-len(self.source) // self.batch)

    def __getitem__(self, i):
        pairs = [self.examples(k) for k in range(i * self.batch, min(len(self.source), (i + 1) * self.batch))]
        return (np.stack([p[0] for p in pairs]),
                np.stack([p[1] for p in pairs]).astype(np.int32))
