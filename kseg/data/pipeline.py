"""tf.data input pipelines: index -> decode -> resize -> (augment) -> batch -> prefetch.

Training order is a pure function of (seed, epoch): each epoch shuffles example indices with a
stateless permutation and draws augmentation randomness from stateless seeds, so a run resumed at
epoch k sees exactly the batches the uninterrupted run would have seen.
"""

import tensorflow as tf

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


def _flip(image, label, seed):
    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    return image, label


def training_dataset(
    source, image_size, batch_size, *, epochs, initial_epoch=0, seed=0, augment=True
):
    """Batches for epochs ``initial_epoch .. epochs-1``; returns (dataset, steps_per_epoch).

    Every epoch has ``len(source) // batch_size`` full batches (the remainder differs per epoch).
    """
    n = len(source)
    steps = n // batch_size
    if steps < 1:
        raise ValueError(
            f"{source.where}: {n} training examples cannot fill one batch of {batch_size}; "
            f"lower --batch-size"
        )

    def epoch_indices(epoch):
        i = tf.data.Dataset.range(steps * batch_size)
        return i.map(
            lambda k: (
                tf.random.experimental.index_shuffle(k, [seed, epoch], n - 1),
                tf.stack([tf.cast(epoch, tf.int64) * n + k, tf.cast(seed, tf.int64)]),
            )
        )

    def load(index, example_seed):
        image, label = resize_pair(*source.load(index), image_size)
        if augment:
            image, label = _flip(image, label, example_seed)
        return image, label

    ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_indices)
    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
    return ds, steps


def evaluation_dataset(source, image_size, batch_size):
    """All examples of ``source`` in order, resized to ``image_size``, batched, prefetched."""
    ds = tf.data.Dataset.range(len(source))
    ds = ds.map(
        lambda i: resize_pair(*source.load(i), image_size),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size).prefetch(AUTOTUNE)
