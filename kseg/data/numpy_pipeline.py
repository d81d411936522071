"""The TensorFlow-free input path (``keras.utils.PyDataset``) used when Keras runs on JAX.

The same examples, order and augmentation as ``kseg.data.pipeline`` (both wrap
``kseg.data.batches``): functions of (seed, epoch, position), so a resumed run sees the batches the
uninterrupted one would have, on either backend. Batches are built in worker threads, or worker
processes.
"""

import multiprocessing
import os
import pickle
import threading

import keras
import numpy as np

from kseg.data.augment import Augmentation
from kseg.data.batches import BatchMaker, Examples, default_workers, init_worker, worker_batch


WORKER_TIMEOUT_S = 600


def default_processes():
    """Loader processes: ``KSEG_LOADER_PROCESSES``, else CPU cores - 2 on machines with more
    than 4 cores (spare cores for the training process), else 0 (threads)."""
    if os.environ.get("KSEG_LOADER_PROCESSES"):
        return int(os.environ["KSEG_LOADER_PROCESSES"])
    cores = os.cpu_count() or 2
    return cores - 2 if cores > 4 else 0


class TrainBatches(keras.utils.PyDataset):
    """Batches of one epoch at a time; ``on_epoch_end`` moves to the next epoch's order.

    ``processes`` (default: ``default_processes()``) builds batches in worker processes instead of
    threads. Augmentation is Python-heavy, and loader threads in the training process compete with
    the training loop for the GIL: on a 2-core x86_64 CPU (model not recorded), 16 augmenting
    threads slowed a small JAX train step 11x (`benchmarks/bench_jax_train.py --contention 16`,
    docs/benchmarks.md). Processes only help where cores are spare (16 of them on 2 cores: 47x
    slower), hence the default. They are started with ``spawn`` (not a fork of a multithreaded JAX
    process), import no Keras; with ``cache=True`` each keeps its own example cache (memory:
    processes x the decoded dataset), with a cache file they all map the one file.
    Sources that cannot be pickled (COCO instances hold a lock) or that set
    ``process_safe = False`` (tfds) use threads.
    """

    def __init__(self, source, image_size, batch_size, *, initial_epoch=0, seed=0,
                 augment=None, workers=None, cache=False, processes=None, repeat=1,
                 teacher=None):
        workers = workers or default_workers()
        super().__init__(workers=workers, use_multiprocessing=False)
        self.source, self.size, self.batch = source, tuple(image_size), int(batch_size)
        self.n = len(source)
        self.seed, self.epoch = int(seed), int(initial_epoch)
        self.aug = augment if isinstance(augment, Augmentation) else Augmentation(augment or "none")
        self.maker = BatchMaker(source, self.size, self.batch, self.seed, self.aug, cache, repeat)
        self.steps = self.maker.steps
        self.teacher = teacher  # run here, in the main process: its targets join the batch
        self.examples = self.maker.examples.prepare()
        if processes is None:
            processes = default_processes()
        if processes and not getattr(source, "process_safe", True):
            processes = 0  # e.g. tfds: workers would import TensorFlow
        if processes:
            try:
                pickle.dumps(self.maker)
            except (TypeError, pickle.PicklingError, AttributeError):
                processes = 0  # a source holding locks or handles: threads
        self.processes = int(processes)
        self._pool = None
        self._pool_lock = threading.Lock()

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        images, labels = self._batch(i)
        if self.teacher is not None:
            return images, self.teacher.pack(images, labels)
        return images, labels

    def _batch(self, i):
        if not self.processes:
            return self.maker(self.epoch, i)
        with self._pool_lock:  # Keras calls from several threads at once
            if self._pool is None:
                # spawn: a fresh interpreter, not a fork of a multithreaded JAX/TF process
                self._pool = multiprocessing.get_context("spawn").Pool(
                    self.processes, initializer=init_worker, initargs=(self.maker,))
            pool = self._pool
        try:  # a worker that died (out of memory, killed) loses its task: do not wait for ever
            return pool.apply_async(worker_batch, (self.epoch, i)).get(timeout=WORKER_TIMEOUT_S)
        except multiprocessing.TimeoutError as exc:
            raise RuntimeError(f"{self.source.where}: loader worker process gave no batch in "
                               f"{WORKER_TIMEOUT_S} s (killed, or out of memory: each worker "
                               f"caches its own decoded examples)") from exc

    def close(self):
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.terminate()

    def __del__(self):
        self.close()

    def on_epoch_end(self):
        self.epoch += 1


class EvalBatches(keras.utils.PyDataset):
    def __init__(self, source, image_size, batch_size, workers=None, cache=False):
        super().__init__(workers=workers or default_workers(), use_multiprocessing=False)
        self.source, self.size, self.batch = source, tuple(image_size), int(batch_size)
        self.examples = Examples(source, self.size, cache).prepare()

    def __len__(self):
        return -(-len(self.source) // self.batch)

    def __getitem__(self, i):
        pairs = [self.examples(k) for k in range(i * self.batch, min(len(self.source), (i + 1) * self.batch))]
        return (np.stack([p[0] for p in pairs]),
                np.stack([p[1] for p in pairs]).astype(np.int32))
