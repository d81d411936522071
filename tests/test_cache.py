"""--cache FILE: keyed to what it holds, rebuilt after a killed run, shared safely by copy-paste."""

import numpy as np
from PIL import Image

from conftest import make_folder
from kseg.data import FolderSource
from kseg.data.augment import Augmentation
from kseg.data.pipeline import cache_file, cache_key, training_dataset


def _source(tmp_path, n=6):
    return FolderSource(make_folder(tmp_path / "d", n=n, size=(20, 16)), "train", val_fraction=0)


def _first_batch(source, size, cache, augment="none"):
    ds, _ = training_dataset(source, size, 2, epochs=1, augment=augment, cache=cache)
    return next(iter(ds))


def test_a_cache_path_reused_for_other_data_or_sizes_is_not_served_stale(tmp_path):
    source = _source(tmp_path)
    cache = tmp_path / "cache" / "examples"
    x16, _ = _first_batch(source, (16, 16), cache)
    x24, _ = _first_batch(source, (24, 24), cache)
    assert x16.shape[1:3] == (16, 16) and x24.shape[1:3] == (24, 24)
    key = cache_key(source, (16, 16))
    # a label rewritten in place: another key, so another cache
    _, label = source.pairs[0]
    Image.fromarray(np.full((16, 20), 1, np.uint8)).save(label)
    assert cache_key(FolderSource(source.root, "train", val_fraction=0), (16, 16)) != key
    assert len({p.name.split("_")[0].split(".index")[0]
                for p in cache.parent.glob("examples.*.index")}) == 2


def test_a_cache_left_by_a_killed_run_is_rebuilt(tmp_path):
    source = _source(tmp_path)
    cache = tmp_path / "examples"
    prefix = cache_file(cache, source, (16, 16))
    # what a SIGKILL during the first pass leaves: TensorFlow's lockfile and a partial shard
    (tmp_path / f"{prefix.rsplit('/', 1)[1]}_0.lockfile").write_text("")
    (tmp_path / f"{prefix.rsplit('/', 1)[1]}_0.data-00000-of-00001").write_bytes(b"partial")
    x, y = _first_batch(source, (16, 16), cache)
    assert x.shape == (2, 16, 16, 3)
    assert not list(tmp_path.glob("*.lockfile"))
    assert (tmp_path / f"{prefix.rsplit('/', 1)[1]}.index").is_file()


def test_copy_paste_reads_a_file_cache_with_two_readers(tmp_path):
    source = _source(tmp_path)
    aug = Augmentation("none", copy_paste=1.0)
    x, y = _first_batch(source, (16, 16), tmp_path / "examples", augment=aug)
    assert x.shape == (2, 16, 16, 3)
    again, _ = _first_batch(source, (16, 16), tmp_path / "examples", augment=aug)
    assert np.array_equal(np.asarray(x), np.asarray(again))  # the same batches from the cache
