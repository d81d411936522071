"""What every dataset loader provides, and how bad data is reported.

A ``Source`` is an indexable collection of (uint8 RGB image, uint8 label map) pairs of one split.
``load_numpy(index)`` decodes one example (PIL, no TensorFlow), so both input paths
(``kseg.data.batches``) read examples in parallel and in any (seeded) order without holding the
set in memory. Sources that cannot be read by index (``random_access = False``: tfds stored as
tfrecord) stream with ``iter_numpy``.
"""

import dataclasses

import numpy as np

from kseg.errors import KsegError


class DatasetError(KsegError, ValueError):
    """A dataset that cannot be used; ``problems`` lists ``(file, problem)`` pairs."""

    def __init__(self, where, problems):
        self.where = str(where)
        self.problems = list(problems)
        shown = self.problems[:20]
        lines = [f"  {f}: {p}" for f, p in shown]
        more = len(self.problems) - len(shown)
        if more > 0:
            lines.append(f"  ... and {more} more problem(s)")
        super().__init__(
            f"dataset {self.where} has {len(self.problems)} problem(s):\n" + "\n".join(lines)
        )


class SplitNotFound(DatasetError):
    """The dataset has no split of the name asked for (``kseg data check`` then skips it)."""


@dataclasses.dataclass
class Report:
    """What a scan of a dataset found (``kseg data check`` prints it)."""

    where: str
    classes: tuple
    ignore_index: int
    num_examples: int = 0
    sizes: dict = dataclasses.field(default_factory=dict)  # (h, w) -> count
    pixel_counts: np.ndarray = None  # per class, plus ignored pixels in the last slot
    # per class: labelled pixels of the images that contain the class (median-frequency balancing)
    image_pixel_counts: np.ndarray = None
    problems: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        n = len(self.classes)
        if self.pixel_counts is None:
            self.pixel_counts = np.zeros(n + 1, dtype=np.int64)
        if self.image_pixel_counts is None:
            self.image_pixel_counts = np.zeros(n, dtype=np.int64)

    def add(self, size, counts):
        """Count one valid example: ``size`` (h, w) and ``counts``, a bincount of its label values
        (at least ``len(classes)`` long; the ignore index's count is read from it when present)."""
        n = len(self.classes)
        counts = np.asarray(counts, dtype=np.int64)
        per_class = counts[:n]
        self.num_examples += 1
        self.sizes[size] = self.sizes.get(size, 0) + 1
        self.pixel_counts[:n] += per_class
        if self.ignore_index < len(counts):
            self.pixel_counts[n] += counts[self.ignore_index]
        self.image_pixel_counts += np.where(per_class > 0, per_class.sum(), 0)

    @property
    def ok(self):
        return not self.problems and self.num_examples > 0

    def frequencies(self):
        """Per-class share of labelled (non-ignored) pixels."""
        counts = np.asarray(self.pixel_counts[:-1], dtype=np.float64)
        total = counts.sum()
        return counts / total if total else counts

    def warnings(self):
        """Signs of a mis-specified dataset that are not errors: classes without pixels, mostly
        ignored pixels (e.g. ISBI's 255 left as the ignore index instead of remapped)."""
        out = [f"class {i} ({name}) has no labelled pixels"
               for i, name in enumerate(self.classes) if self.pixel_counts[i] == 0]
        total = int(self.pixel_counts.sum())
        if total and self.pixel_counts[-1] > total / 2:
            out.append(f"{self.pixel_counts[-1] / total:.0%} of all pixels carry the ignore index "
                       f"{self.ignore_index}; is a --remap missing?")
        return out

    def raise_if_bad(self):
        if self.num_examples == 0 and not self.problems:
            self.problems.append((self.where, "no examples found (empty dataset)"))
        if self.problems:
            raise DatasetError(self.where, self.problems)


class Source:
    """Base class of a dataset split. Subclasses set ``classes``, ``ignore_index``, ``where``."""

    classes: tuple = ()
    ignore_index: int = 255
    where: str = ""

    def __len__(self):
        raise NotImplementedError

    @property
    def num_classes(self):
        return len(self.classes)

    def load_numpy(self, index):
        """Example ``index`` as numpy arrays (uint8 RGB ``[H, W, 3]``, uint8 ``[H, W]``), without
        TensorFlow."""
        raise NotImplementedError

    def iter_numpy(self, indices=None):
        """``(index, image, label)`` as numpy arrays for ``indices`` (sorted; default all), in
        order. Sources that only stream (tfds tfrecord) override it to read through once."""
        for i in (range(len(self)) if indices is None else sorted(indices)):
            yield (i, *self.load_numpy(i))

    def scan(self):
        """Validate every example; returns a ``Report`` (never raises for bad data)."""
        raise NotImplementedError

    def value_problem(self, counts):
        """The problem with a label whose value histogram is ``counts`` (values that are neither a
        class nor the ignore index), or None."""
        n = len(self.classes)
        bad = [int(v) for v in np.nonzero(counts)[0] if v >= n and v != self.ignore_index]
        if not bad:
            return None
        return (f"label value(s) {', '.join(str(v) for v in bad[:8])} are neither a class "
                f"(0..{n - 1}) nor the ignore index {self.ignore_index}"
                + (" after remapping" if getattr(self, "remap", None) else ""))
