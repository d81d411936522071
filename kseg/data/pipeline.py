"""tf.data input pipelines: index -> decode -> resize -> augment -> batch -> prefetch.

Training order is a pure function of (seed, epoch): each epoch shuffles example indices with a
stateless permutation and draws augmentation randomness from stateless seeds, so a run resumed at
epoch k sees exactly the batches the uninterrupted run would have seen. Sources without access by
index (tfds ``tfrecord`` data) and cached pipelines shuffle with a buffer seeded by (seed, epoch),
which is just as reproducible.

``cache``: keep decoded, resized examples in memory (``True``) or in a cache file (a path), so
later epochs skip JPEG/PNG decoding; augmentation still runs fresh each epoch. A cache file is
keyed to what it holds (``cache_key``: the data's files, their sizes and times, the image size),
so a reused path never serves another dataset's examples; it is written in full before training
reads it, and a cache left half-written by a killed run is discarded and rebuilt.
``deterministic=False`` lets parallel decoding deliver out of order (a little faster; then a
resumed run no longer repeats the exact batch composition).
"""

import os

import tensorflow as tf

from kseg.data.augment import Augmentation
from kseg.data.batches import epoch_size

AUTOTUNE = tf.data.AUTOTUNE


def resize_pair(image, label, size):
    """Resize to ``size`` = (height, width): bilinear (antialiased) image, nearest-neighbour label."""
    size = [int(size[0]), int(size[1])]
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    label = tf.image.resize(label[..., None], size, method="nearest")[..., 0]
    image.set_shape(size + [3])
    label.set_shape(size)
    return image, label


def as_augmentation(augment, ignore_index=255):
    """``Augmentation`` from a preset name / file path / bool / ``Augmentation``."""
    if isinstance(augment, Augmentation):
        return augment
    if augment is True:
        augment = "light"
    if augment in (False, None):
        augment = "none"
    return Augmentation(str(augment), ignore_index=ignore_index)


def cache_key(source, image_size):
    """A digest of what a cache of ``source`` at ``image_size`` holds: its description, size,
    and for file datasets every image and label path with its size and modification time."""
    import hashlib
    import os

    h = hashlib.sha256()
    h.update(repr((type(source).__name__, source.where, len(source), tuple(image_size),
                   tuple(source.classes), getattr(source, "ignore_index", None),
                   getattr(source, "seed", None), getattr(source, "data_dir", None),
                   sorted((getattr(source, "remap", None) or {}).items()))).encode())
    for pair in getattr(source, "pairs", ()):
        for entry in pair:
            path = str(entry).split("#", 1)[0]  # COCO instance labels: "file.json#<id>"
            st = os.stat(path) if os.path.exists(path) else None
            h.update(f"{entry}|{st and st.st_size}|{st and st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cache_file(cache, source, image_size):
    """The keyed cache prefix for ``cache`` (a path given by the user), ready to use: a cache
    left incomplete by a killed run (no index written, or TensorFlow's lockfile left behind) is
    removed first."""
    from pathlib import Path

    prefix = Path(f"{cache}.{cache_key(source, image_size)}")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    complete = Path(f"{prefix}.index").is_file()
    stale = list(prefix.parent.glob(f"{prefix.name}_*.lockfile"))
    if stale or not complete:
        for leftover in prefix.parent.glob(f"{prefix.name}*"):
            leftover.unlink()
    return str(prefix)


def _warm(ds):
    """Read ``ds`` through once (writes its file cache in full before several readers share it)."""
    for _ in ds:
        pass


def _resized(source, image_size, cache=None, deterministic=True):
    """Dataset of every resized example, in source order (cached if asked)."""
    if getattr(source, "random_access", True):
        ds = tf.data.Dataset.range(len(source)).map(
            lambda i: resize_pair(*source.load(i), image_size),
            num_parallel_calls=AUTOTUNE, deterministic=deterministic,
        )
    else:
        ds = source.stream().map(lambda im, lb: resize_pair(im, lb, image_size),
                                 num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if cache is True:
        ds = ds.cache("")
    elif cache:
        prefix = cache_file(cache, source, image_size)
        ds = ds.cache(prefix)
        if not os.path.isfile(f"{prefix}.index"):
            _warm(ds)
    return ds


def training_dataset(
    source, image_size, batch_size, *, epochs, initial_epoch=0, seed=0, augment="light",
    cache=None, deterministic=True, repeat=1,
):
    """Batches for epochs ``initial_epoch .. epochs-1``; returns (dataset, steps_per_epoch).

    Every epoch passes ``repeat`` times over the source, shuffled together, in
    ``repeat * len(source) // batch_size`` full batches (the remainder differs per epoch).
    """
    n = len(source)
    n_epoch, steps = epoch_size(source, batch_size, repeat)  # each example ``repeat`` times
    repeat = int(repeat)
    aug = as_augmentation(augment, getattr(source, "ignore_index", 255))
    num_classes = len(source.classes)
    per_epoch = steps * batch_size
    by_index = getattr(source, "random_access", True) and not cache

    def example_seed(epoch, k):
        return tf.stack([tf.cast(epoch, tf.int64) * n_epoch + k, tf.cast(seed, tf.int64)])

    def augment_one(image, label, ex_seed, donor=None):
        return aug.apply(image, label, ex_seed, donor=donor, num_classes=num_classes)

    if by_index:
        def epoch_indices(epoch):
            k = tf.data.Dataset.range(per_epoch)
            return k.map(lambda k: (
                tf.random.experimental.index_shuffle(k, [seed, epoch], n_epoch - 1) % n,
                tf.random.experimental.index_shuffle(k, [seed + 7919, epoch], n_epoch - 1) % n,
                example_seed(epoch, k),
            ))

        def load(index, donor_index, ex_seed):
            image, label = resize_pair(*source.load(index), image_size)
            donor = resize_pair(*source.load(donor_index), image_size) if aug.needs_donor else None
            return augment_one(image, label, ex_seed, donor)

        ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_indices)
        ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        base = _resized(source, image_size, cache, deterministic)
        if repeat > 1:
            base = base.repeat(repeat)
        ds = None
        for epoch in range(initial_epoch, epochs):
            shuffled = base.shuffle(min(n_epoch, 2048), seed=seed * 100_003 + epoch,
                                    reshuffle_each_iteration=False).take(per_epoch)
            if aug.needs_donor:
                donors = base.shuffle(min(n_epoch, 2048), seed=seed * 100_003 + epoch + 50_000,
                                      reshuffle_each_iteration=False).repeat()
                part = tf.data.Dataset.zip(shuffled, donors)
                part = part.enumerate().map(
                    lambda k, ex, e=epoch: augment_one(*ex[0], example_seed(e, k), donor=ex[1]),
                    num_parallel_calls=AUTOTUNE, deterministic=deterministic)
            else:
                part = shuffled.enumerate().map(
                    lambda k, ex, e=epoch: augment_one(*ex, example_seed(e, k)),
                    num_parallel_calls=AUTOTUNE, deterministic=deterministic)
            ds = part if ds is None else ds.concatenate(part)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
    return ds, steps


def evaluation_dataset(source, image_size, batch_size, cache=None):
    """All examples of ``source`` in order, resized to ``image_size``, batched, prefetched."""
    return _resized(source, image_size, cache).batch(batch_size).prefetch(AUTOTUNE)
