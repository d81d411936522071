"""tf.data input pipelines over ``kseg.data.batches``: position -> example -> batch -> prefetch.

The examples (decode, resize, augmentation) and the training order come from the same code as
the TensorFlow-free loader of the JAX backend (``BatchMaker``, ``Examples``), run in parallel
``tf.numpy_function`` calls, so a run gives the same batches on either backend, and a run resumed
at epoch k sees exactly the batches the uninterrupted run would have seen.

``cache``: keep decoded, resized examples in memory (``True``) or in a cache file (a path), so
later epochs skip JPEG/PNG decoding; augmentation still runs fresh each epoch (see
``kseg.data.batches`` for how a cache file is keyed and written). ``deterministic=False`` lets
parallel loading deliver out of order (a little faster; then a resumed run no longer repeats the
exact batch composition).
"""

import atexit
import gc

import tensorflow as tf

from kseg.data.augment import Augmentation
from kseg.data.batches import BatchMaker, Examples

AUTOTUNE = tf.data.AUTOTUNE


@atexit.register
def _collect_iterators():
    """Collect unreachable tf.data iterators before the interpreter finalizes: an iterator with
    ``tf.numpy_function`` calls in flight cannot finish them once Python refuses its threads the
    GIL, and its destructor would then wait for ever. (An iterator still referenced at exit, e.g.
    a module-level ``it = iter(ds)``, should be deleted by its owner before exit.)"""
    gc.collect()


def as_augmentation(augment, ignore_index=255):
    """``Augmentation`` from a preset name / file path / bool / ``Augmentation``."""
    if isinstance(augment, Augmentation):
        return augment
    if augment is True:
        augment = "light"
    if augment in (False, None):
        augment = "none"
    return Augmentation(str(augment), ignore_index=ignore_index)


def _numpy_pair(fn, args, size):
    image, label = tf.numpy_function(fn, args, (tf.uint8, tf.uint8), stateful=False)
    image.set_shape((int(size[0]), int(size[1]), 3))
    label.set_shape((int(size[0]), int(size[1])))
    return image, label


def training_dataset(
    source, image_size, batch_size, *, epochs, initial_epoch=0, seed=0, augment="light",
    cache=None, deterministic=True, repeat=1, teacher=None,
):
    """Batches for epochs ``initial_epoch .. epochs-1``; returns (dataset, steps_per_epoch).

    Every epoch passes ``repeat`` times over the source, shuffled together, in
    ``repeat * len(source) // batch_size`` full batches (the remainder differs per epoch).
    With a ``teacher`` (``kseg.data.teacher.Teacher``) the targets are the labels packed with its
    probabilities of the augmented batch, ``[B, H, W, 1 + C]``.
    """
    aug = as_augmentation(augment, getattr(source, "ignore_index", 255))
    maker = BatchMaker(source, image_size, batch_size, seed, aug, cache, repeat)
    maker.examples.prepare()
    steps = maker.steps
    per_epoch = steps * batch_size

    def example(epoch, k):
        return _numpy_pair(maker.example, [epoch, k], maker.output_size)

    ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(
        lambda e: tf.data.Dataset.range(per_epoch).map(lambda k: (e, k)))
    ds = ds.map(example, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=True)
    if teacher is not None:
        h, w = maker.output_size

        def with_teacher(images, labels):
            target = tf.numpy_function(teacher.pack, [images, labels], tf.float32, stateful=False)
            target.set_shape((batch_size, h, w, 1 + teacher.num_classes))
            return images, target

        ds = ds.map(with_teacher, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(AUTOTUNE), steps


def evaluation_dataset(source, image_size, batch_size, cache=None):
    """All examples of ``source`` in order, resized to ``image_size``, batched, prefetched."""
    examples = Examples(source, image_size, cache).prepare()
    ds = tf.data.Dataset.range(len(source)).map(
        lambda i: _numpy_pair(examples, [i], image_size), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
