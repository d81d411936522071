"""Dataset loaders on the real sample files in ../shared/data (skipped where absent)."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import shared
from kseg.data import DatasetError, open_source
from kseg.data.pipeline import evaluation_dataset, training_dataset


def test_voc_splits_palette_indices_and_ignore():
    root = shared("formats", "voc")
    train = open_source(f"voc:{root}", "train")
    val = open_source(f"voc:{root}", "val")
    assert (len(train), len(val)) == (2, 1)
    assert len(train.classes) == 21 and train.classes[0] == "background"
    assert train.scan().ok
    _, label = train.load_numpy(0)
    values = set(np.unique(label).tolist())
    assert 255 in values and values - {255} <= set(range(21))  # indices, not palette colours
    assert len(open_source(f"voc:{root}:trainval", "val")) == 3  # an explicit split wins


def test_voc_missing_split_names_the_list(tmp_path):
    root = shared("formats", "voc")
    with pytest.raises(DatasetError, match="nosuch.txt"):
        open_source(f"voc:{root}:nosuch", "train")


def test_cityscapes_label_ids_map_to_train_ids():
    root = shared("formats", "cityscapes")
    src = open_source(f"cityscapes:{root}", "val")
    assert len(src) == 1 and len(src.classes) == 19 and src.classes[13] == "car"
    _, label = src.load_numpy(0)
    reference = np.asarray(Image.open(next(root.rglob("*_labelTrainIds.png"))))
    assert np.mean(label == reference) > 0.99  # the official table (files were resized apart)
    assert src.scan().ok


def test_coco_panoptic_agrees_with_its_instances_file():
    root = shared("formats", "coco", "annotations")
    pan = open_source(f"coco:{root / 'panoptic_examples.json'}", "train", val_fraction=0)
    ins = open_source(f"coco:{root / 'panoptic_coco_detection_format.json'}", "train", val_fraction=0)
    assert len(pan.classes) == 133 and ins.classes[0] == "background" and len(ins.classes) == 134
    assert pan.scan().ok and ins.scan().ok
    for i in range(len(pan)):
        _, a = pan.load_numpy(i)
        _, b = ins.load_numpy(i)
        both = (a != 255) & (b != 255) & (b != 0)
        assert both.mean() > 0.5
        assert np.mean(a[both] + 1 == b[both]) > 0.97  # same segments, background shifts ids by 1


def test_coco_instance_polygons_match_the_voc_export():
    """labelme wrote the same annotations as COCO polygons and as VOC label PNGs."""
    coco = open_source(f"coco:{shared('formats', 'coco', 'labelme_instances', 'annotations.json')}",
                       "train", val_fraction=0)
    voc = open_source(f"voc:{shared('formats', 'voc')}:trainval", "train")
    assert coco.classes == voc.classes
    for i, (image_path, _) in enumerate(coco.pairs):
        j = [p.stem for p, _ in voc.pairs].index(image_path.stem)
        _, a = coco.load_numpy(i)
        _, b = voc.load_numpy(j)
        known = b != 255
        assert np.mean(a[known] == b[known]) > 0.97


def test_coco_carves_a_validation_part_and_reports_missing_images(tmp_path):
    path = shared("formats", "coco", "labelme_instances", "annotations.json")
    train = open_source(f"coco:{path}", "train", val_fraction=0.34)
    val = open_source(f"coco:{path}", "val", val_fraction=0.34)
    assert (len(train), len(val)) == (2, 1)
    broken = tmp_path / "ann.json"
    broken.write_text(path.read_text())  # image paths no longer resolve from here
    report = open_source(f"coco:{broken}", "train", val_fraction=0).scan()
    assert not report.ok and "not found" in report.problems[0][1]


def test_camvid_void_becomes_ignore_and_splits():
    root = shared("camvid")
    train, val = open_source(f"camvid:{root}", "train"), open_source(f"camvid:{root}", "val")
    assert (len(train), len(val)) == (367, 101) and len(train.classes) == 11
    _, label = val.load_numpy(0)
    assert set(np.unique(label).tolist()) <= set(range(11)) | {255}
    assert 11 not in label
    report = val.scan()
    assert report.ok and report.pixel_counts[-1] > 0  # void pixels counted as ignored


@pytest.mark.parametrize("spec", [
    "voc:{d}/formats/voc", "cityscapes:{d}/formats/cityscapes:val",
    "coco:{d}/formats/coco/annotations/panoptic_examples.json", "camvid:{d}/camvid:val",
])
def test_data_check_understands_every_format(spec):
    from kseg.cli import main

    d = shared().as_posix()
    result = CliRunner().invoke(main, ["data", "check", spec.format(d=d), "--val-fraction", "0"])
    assert result.exit_code == 0, result.output
    assert "valid pairs" in result.output


@pytest.fixture(scope="module")
def tfds_dirs(tmp_path_factory):
    pytest.importorskip("tensorflow_datasets")
    import tiny_seg_builder

    dirs = {}
    for fmt in ("array_record", "tfrecord"):
        d = tmp_path_factory.mktemp(fmt)
        tiny_seg_builder.TinySeg(data_dir=str(d), file_format=fmt).download_and_prepare()
        dirs[fmt] = d
    return dirs


@pytest.mark.parametrize("fmt", ["array_record", "tfrecord"])
def test_tfds_prepared_dataset_offline(tfds_dirs, fmt):
    opts = dict(tfds_data_dir=str(tfds_dirs[fmt]), classes=["left", "right", "top"])
    src = open_source("tfds:tiny_seg", "train", **opts)
    assert len(src) == 6 and src.random_access == (fmt == "array_record")
    report = src.scan()
    assert report.ok and report.num_examples == 6
    assert open_source("tfds:tiny_seg:test", "train", **opts).scan().num_examples == 3
    ds, steps = training_dataset(src, (16, 16), 2, epochs=2, augment="light")
    batches = list(ds)
    assert len(batches) == 2 * steps and batches[0][0].shape == (2, 16, 16, 3)
    again = list(training_dataset(src, (16, 16), 2, epochs=2, initial_epoch=1, augment="light")[0])
    for (x1, y1), (x2, y2) in zip(batches[steps:], again):  # resuming repeats epoch 2 exactly
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    (x, y), = list(evaluation_dataset(src, (24, 32), 8))
    assert set(np.unique(y).tolist()) == {0, 1, 2}


def test_tfds_unprepared_dataset_says_what_to_do(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetError, match="not prepared or unknown"):
        open_source("tfds:no_such_dataset_here", "train", tfds_data_dir=str(tmp_path))


def test_camvid_train_plus_val_joins_the_splits(tmp_path):
    from conftest import make_folder

    from kseg.data import DatasetError, open_source

    make_folder(tmp_path / "cv" / "train", n=3, classes=("a", "b"))
    make_folder(tmp_path / "cv" / "val", n=2, classes=("a", "b"))
    (tmp_path / "cv" / "classes.txt").write_text("a\nb\n")
    joined = open_source(f"camvid:{tmp_path / 'cv'}:train+val", "train")
    train = open_source(f"camvid:{tmp_path / 'cv'}", "train")
    val = open_source(f"camvid:{tmp_path / 'cv'}", "val")
    assert len(joined) == 5 and joined.pairs == train.pairs + val.pairs
    assert joined.split == "train+val" and " + " in joined.where
    # the validation split of such a run is the dataset's own val split
    assert open_source(f"camvid:{tmp_path / 'cv'}:train+val", "val").pairs == val.pairs
    # an export of such a run says its validation scores are not held out
    from kseg.export.exporter import _validation_held_out
    from kseg.train.config import TrainConfig

    notes = []
    assert not _validation_held_out(TrainConfig(data=f"camvid:{tmp_path / 'cv'}:train+val"),
                                    notes.append)
    assert "trained on train+val" in notes[0] and "not held-out" in notes[0]
    assert _validation_held_out(TrainConfig(data=f"camvid:{tmp_path / 'cv'}"), notes.append)
    assert len(notes) == 1
    with pytest.raises(DatasetError, match="test"):
        open_source(f"camvid:{tmp_path / 'cv'}:train+test", "train")


def test_a_tfrecord_tfds_run_evaluates_and_exports_int8(tfds_dirs, tmp_path):
    """tfrecord datasets only stream: evaluation and int8 calibration read them in one pass."""
    from kseg.cli import main

    opts = ["--tfds-data-dir", str(tfds_dirs["tfrecord"]), "--classes", "left,right,top"]
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--data", "tfds:tiny_seg", "--val-data",
                                  "tfds:tiny_seg:test", *opts, "--image-size", "16", "16",
                                  "-o", "depth=1", "-o", "base_filters=2", "--batch-size", "2",
                                  "--epochs", "1", "--out", str(run)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(run)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", str(run), "--tflite", "--quantize", "int8",
                                  "--representative", "4", "--max-miou-drop", "100",
                                  "--out", str(tmp_path / "exp")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "exp" / "model_int8.tflite").is_file()
