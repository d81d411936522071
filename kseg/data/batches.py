"""Examples and training batches as numpy arrays, built without Keras or TensorFlow.

This is the one input path of kseg: ``kseg.data.pipeline`` wraps it in ``tf.data`` (TensorFlow
backend) and ``kseg.data.numpy_pipeline`` in a Keras ``PyDataset`` (JAX backend), so the order,
the resize and the augmentation of every batch are the same on both; loader worker processes
import only numpy, OpenCV, PIL and kseg.data.

- ``Examples``: every example of a source resized to the training size (``kseg.resize``), read by
  index, optionally cached: in memory (``cache=True``) or in a cache file (``cache=PATH``).
- ``BatchMaker``: training batch ``i`` of ``epoch`` as a pure function of (seed, epoch, i).

A cache file (``PATH.<key>.npy``, one uint8 array ``[N, H, W, 4]``: RGB + label) is keyed to what
it holds (``cache_key``: the data's files, their sizes and times, the image size), so a reused path
never serves another dataset's examples. It is written complete or not at all
(``kseg.files.atomic_file``), on a disk checked to have room for it and with that room reserved
before the first example is written; one process writes it while any other that needs it waits for
that one's result (``kseg.files.Lock``). Loader processes map it read-only.
"""

import errno
import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from kseg.files import Lock, atomic_file, ensure_space
from kseg.resize import resize_pair

CACHE_FORMAT = 2  # bump when what a cache file holds changes (its key changes with it)


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


def cache_key(source, image_size):
    """A digest of what a cache of ``source`` at ``image_size`` holds: its description, size,
    and for file datasets every image and label path with its size and modification time."""
    h = hashlib.sha256()
    h.update(repr((CACHE_FORMAT, type(source).__name__, source.where, len(source),
                   tuple(image_size), tuple(source.classes), getattr(source, "ignore_index", None),
                   getattr(source, "seed", None), getattr(source, "data_dir", None),
                   sorted((getattr(source, "remap", None) or {}).items()))).encode())
    for pair in getattr(source, "pairs", ()):
        for entry in pair:
            path = str(entry).split("#", 1)[0]  # COCO instance labels: "file.json#<id>"
            st = os.stat(path) if os.path.exists(path) else None
            h.update(f"{entry}|{st and st.st_size}|{st and st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cache_file(cache, source, image_size):
    """The keyed cache file for ``cache`` (a path given by the user)."""
    return Path(f"{cache}.{cache_key(source, image_size)}.npy")


def _pairs(source, size):
    """Every example of ``source`` resized to ``size``, in order (by index, or streamed once for
    sources without access by index)."""
    if getattr(source, "random_access", True):
        for i in range(len(source)):
            yield i, resize_pair(*source.load_numpy(i), size)
    else:
        for i, image, label in source.iter_numpy():
            yield i, resize_pair(image, label, size)


def write_cache(path, source, size, log=None):
    """Write the cache file ``path`` of ``source`` at ``size`` in full, unless it is there (another
    process wrote it while this one waited for the lock). Its size is known: a disk without room
    is refused before the first example is read (``StorageError``)."""
    path = Path(path)
    shape = (len(source), int(size[0]), int(size[1]), 4)
    with Lock(path, wait=True, log=log):
        if path.is_file():
            return path
        ensure_space(path, int(np.prod(shape)))
        with atomic_file(path) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            _reserve(tmp)
            for i, (image, label) in _pairs(source, size):
                arr[i, ..., :3], arr[i, ..., 3] = image, label
            arr.flush()
            del arr
    return path


def _reserve(path):
    """Allocate the whole (sparse) file now: a disk that fills up meanwhile is an ``OSError``
    here, not a SIGBUS when a mapped page is written."""
    with open(path, "rb+") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


class Examples:
    """Example ``index`` of ``source`` resized to ``size``: (uint8 ``[H, W, 3]``, uint8 ``[H, W]``).

    ``cache``: None/False reads and resizes each time; True keeps decoded examples in memory (a
    few hundred MB for CamVid's 367 images at full size); a path uses a cache file, built in full
    on first use. Sources that only stream (tfds stored as tfrecord) are read through once into
    the cache (memory unless a path is given).
    """

    def __init__(self, source, size, cache=None):
        self.source, self.size = source, (int(size[0]), int(size[1]))
        if not getattr(source, "random_access", True) and not cache:
            cache = True
        self.file = cache_file(cache, source, self.size) if cache not in (None, False, True) else None
        self.memory = {} if cache is True else None
        self._array = None
        self._lock = threading.Lock()

    def __getstate__(self):  # for loader processes: they map the cache file themselves
        state = dict(self.__dict__)
        state["_array"], state["_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.source)

    def prepare(self):
        """Build what the cache needs before several readers share it (the cache file in full;
        all examples of a streamed source). Returns self."""
        if self.file is not None:
            self._mapped()
        elif self.memory is not None and not getattr(self.source, "random_access", True):
            with self._lock:
                if len(self.memory) < len(self.source):
                    self.memory.update(_pairs(self.source, self.size))
        return self

    def _mapped(self):
        if self._array is None:
            with self._lock:
                if self._array is None:
                    if not self.file.is_file():
                        write_cache(self.file, self.source, self.size)
                    self._array = np.load(self.file, mmap_mode="r")
        return self._array

    def __call__(self, index):
        index = int(index)
        if self.file is not None:
            row = self._mapped()[index]
            return np.array(row[..., :3]), np.array(row[..., 3])
        if self.memory is not None:
            if not getattr(self.source, "random_access", True):
                self.prepare()
            pair = self.memory.get(index)
            if pair is None:
                pair = self.memory[index] = resize_pair(*self.source.load_numpy(index), self.size)
            return pair[0].copy(), pair[1].copy()  # augmentation may write in place
        return resize_pair(*self.source.load_numpy(index), self.size)


class BatchMaker:
    """Builds training batch ``i`` of ``epoch``: a pure function of (seed, epoch, i), so threads,
    worker processes and both backends give the same batches. Picklable (sent once to each
    worker process).

    Epoch ``e`` draws every example ``repeat`` times in a seeded permutation of (seed, e);
    copy-paste donors come from a second permutation. Position ``k`` of epoch ``e`` is augmented
    with the seed (e * examples per epoch + k, seed).
    """

    def __init__(self, source, size, batch, seed, aug, cache=None, repeat=1):
        self.source, self.size, self.batch, self.seed, self.aug = source, size, batch, seed, aug
        self.examples = Examples(source, size, cache)
        self.n, self.num_classes = len(source), len(source.classes)
        self.n_epoch, self.steps = epoch_size(source, batch, repeat)
        self._orders = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_orders"] = {}
        return state

    @property
    def output_size(self):
        """(height, width) of the training examples: the crop, or the image size."""
        return tuple(self.aug.crop or self.size)

    def order(self, epoch, salt=0):
        key = (int(epoch), int(salt))
        order = self._orders.get(key)
        if order is None:
            order = np.random.default_rng([self.seed + salt, int(epoch)]).permutation(self.n_epoch) % self.n
            if len(self._orders) > 8:
                self._orders.clear()
            self._orders[key] = order
        return order

    def example(self, epoch, k):
        """The augmented example at position ``k`` of ``epoch``."""
        epoch, k = int(epoch), int(k)
        image, label = self.examples(self.order(epoch)[k])
        donor = self.examples(self.order(epoch, 7919)[k]) if self.aug.needs_donor else None
        return self.aug(image, label, [epoch * self.n_epoch + k, self.seed], donor, self.num_classes)

    def __call__(self, epoch, i):
        pairs = [self.example(epoch, k) for k in range(i * self.batch, (i + 1) * self.batch)]
        return (np.stack([p[0] for p in pairs]),
                np.stack([p[1] for p in pairs]).astype(np.int32))


_WORKER_MAKER = None


def init_worker(maker):
    import cv2

    global _WORKER_MAKER
    _WORKER_MAKER = maker
    cv2.setNumThreads(1)  # parallelism is across processes


def worker_batch(epoch, i):
    return _WORKER_MAKER(epoch, i)
