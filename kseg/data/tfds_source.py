"""tensorflow-datasets as a source: ``tfds:NAME[:SPLIT]`` (SPLIT may use tfds slicing, ``train[:80%]``).

Offline by default: the dataset must already be prepared under ``tfds_data_dir`` (or tfds' default
folder); ``download=True`` lets tfds fetch and prepare it. A prepared dataset is read from its files,
so the builder's code need not be importable. Datasets stored as ``array_record`` are read by index
(parallel decode, seeded per-epoch order like the file loaders); ``tfrecord`` ones are streamed with
a seeded shuffle buffer.

The image feature is ``image``; the label is the first of ``segmentation_mask``, ``label``, ``mask``
that is an image feature (or ``label_key``). Classes come from ``classes`` or a table of known
datasets (oxford_iiit_pet's trimaps 1/2/3 -> pet, background, border).
"""

import numpy as np

from kseg.data.base import DatasetError, Report, Source, SplitNotFound
from kseg.data.pairs import remap_table

LABEL_KEYS = ("segmentation_mask", "label", "mask")
KNOWN = {
    "oxford_iiit_pet": (("pet", "background", "border"), {1: 0, 2: 1, 3: 2}),
}


class TfdsSource(Source):
    process_safe = False  # loader worker processes would import TensorFlow

    def __init__(self, name, split="train", data_dir=None, classes=None, remap=None,
                 ignore_index=255, image_key="image", label_key=None, download=False):
        import tensorflow_datasets as tfds

        self.name, self.split, self.ignore_index = name, split, int(ignore_index)
        self.where = f"tfds:{name} ({split})"
        try:
            self.builder = tfds.builder(name, data_dir=data_dir)
            if download:
                self.builder.download_and_prepare()
            info = self.builder.info
            if info.splits and split.isidentifier() and split not in info.splits:
                raise SplitNotFound(self.where, [(f"tfds:{name}", f"no split {split!r} (have: "
                                                  f"{', '.join(sorted(info.splits))})")])
            self.size = info.splits[split].num_examples
        except SplitNotFound:
            raise
        except Exception as exc:  # tfds raises many kinds; say what to do
            raise DatasetError(self.where, [(
                f"tfds:{name}",
                f"not prepared or unknown ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                f"prepare it once with network access (tfds build {name}) or give --tfds-data-dir",
            )]) from None
        features = info.features
        if label_key is None:
            label_key = next((k for k in LABEL_KEYS if k in features
                              and type(features[k]).__name__ == "Image"), None)
        if image_key not in features or label_key not in features:
            raise DatasetError(self.where, [(f"tfds:{name}", f"needs image and segmentation features; "
                                             f"has {', '.join(features.keys())}")])
        self.image_key, self.label_key = image_key, label_key
        known_classes, known_remap = KNOWN.get(name.split("/")[0], (None, {}))
        classes = classes or known_classes
        if classes is None:
            raise DatasetError(self.where, [(f"tfds:{name}", "give the class names (--classes a,b,c)")])
        self.classes = tuple(classes)
        self.remap = {**known_remap, **(remap or {})}
        self.table = remap_table(self.remap, self.ignore_index)
        self.random_access = getattr(info.file_format, "value", info.file_format) == "array_record"
        self._source = self.builder.as_data_source(split) if self.random_access else None

    def __len__(self):
        return self.size

    def _decode(self, example):
        image = np.asarray(example[self.image_key])
        label = np.asarray(example[self.label_key])
        if image.ndim == 2 or image.shape[-1] == 1:
            image = np.repeat(image.reshape(image.shape[:2] + (1,)), 3, axis=-1)
        return image.astype(np.uint8), self.table[label.reshape(label.shape[:2])]

    def load_numpy(self, index):
        if not self.random_access:
            raise TypeError(f"{self.where} is stored as tfrecord: it streams, no access by index")
        return self._decode(self._source[int(index)])

    def iter_numpy(self, indices=None):
        if self.random_access:
            yield from super().iter_numpy(indices)
            return
        import tensorflow_datasets as tfds

        wanted = None if indices is None else set(int(i) for i in indices)
        for i, (image, label) in enumerate(tfds.as_numpy(self.stream())):
            if wanted is None or i in wanted:
                yield i, image, label

    def stream(self):
        """All examples of a tfrecord-stored dataset as a ``tf.data`` dataset of (uint8 image,
        uint8 label), in stored order (read through by ``iter_numpy``)."""
        import tensorflow as tf

        ds = self.builder.as_dataset(self.split, shuffle_files=False)
        table = tf.constant(self.table)

        def fix(ex):
            image, label = ex[self.image_key], ex[self.label_key]
            if image.shape[-1] == 1:
                image = tf.repeat(image, 3, axis=-1)
            label = tf.gather(table, tf.cast(label[..., 0] if label.shape.rank == 3 else label, tf.int32))
            return tf.ensure_shape(image, (None, None, 3)), tf.ensure_shape(label, (None, None))

        return ds.map(fix, num_parallel_calls=tf.data.AUTOTUNE)

    def scan(self):
        report = Report(self.where, self.classes, self.ignore_index)
        for i, image, label in self.iter_numpy():
            where = f"{self.where} example {i}"
            if image.shape[:2] != label.shape:
                report.problems.append((where, f"image {image.shape[:2]} and label {label.shape} sizes differ"))
                continue
            counts = np.bincount(label.ravel(), minlength=256)
            problem = self.value_problem(counts)
            if problem:
                report.problems.append((where, problem))
                continue
            report.add(label.shape, counts)
        return report
