"""--cache FILE: keyed to what it holds, never half-written under its name, shared by readers."""

import numpy as np
from PIL import Image

from conftest import make_folder
from kseg.data import FolderSource
from kseg.data.augment import Augmentation
from kseg.data.batches import cache_file, cache_key
from kseg.data.pipeline import training_dataset


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
    assert len(list(cache.parent.glob("examples.*.npy"))) == 2


def test_a_cache_left_by_a_killed_run_is_rebuilt(tmp_path):
    source = _source(tmp_path)
    cache = tmp_path / "examples"
    path = cache_file(cache, source, (16, 16))
    # what a SIGKILL while writing leaves: a partial file under a temporary name, never the real
    # one (its process is gone: pid 2**22 + 1 is above Linux's pid_max)
    partial = tmp_path / f".{path.name}.{2**22 + 1}-456.partial"
    partial.write_bytes(b"partial")
    x, y = _first_batch(source, (16, 16), cache)
    assert x.shape == (2, 16, 16, 3)
    assert path.is_file()
    written = np.load(path)
    assert written.shape == (6, 16, 16, 4)
    assert not list(tmp_path.glob(".*.partial"))  # the dead run's leftover is removed


def test_a_cache_interrupted_while_written_leaves_nothing_under_its_name(tmp_path, monkeypatch):
    from kseg.data import batches

    source = _source(tmp_path)
    path = cache_file(tmp_path / "examples", source, (16, 16))

    def dies(*args):
        raise KeyboardInterrupt  # the run is stopped half-way through the first pass

    monkeypatch.setattr(source, "load_numpy", lambda i: dies() if i == 3 else type(source).load_numpy(source, i))
    try:
        batches.write_cache(path, source, (16, 16))
    except KeyboardInterrupt:
        pass
    assert not path.exists() and not list(tmp_path.glob(".*partial"))


def test_copy_paste_reads_a_file_cache_with_two_readers(tmp_path):
    source = _source(tmp_path)
    aug = Augmentation("none", copy_paste=1.0)
    x, y = _first_batch(source, (16, 16), tmp_path / "examples", augment=aug)
    assert x.shape == (2, 16, 16, 3)
    again, _ = _first_batch(source, (16, 16), tmp_path / "examples", augment=aug)
    assert np.array_equal(np.asarray(x), np.asarray(again))  # the same batches from the cache
