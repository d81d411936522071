import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kseg.cli import main
from kseg.data import DatasetError, FolderSource, ShapesSource, open_source, parse_remap
from kseg.data.pipeline import evaluation_dataset, training_dataset

from conftest import make_folder, shared


# -- built-in shapes -----------------------------------------------------------------------
def test_shapes_is_deterministic_and_split_dependent():
    a = ShapesSource("train", 4, height=40, width=56, seed=3)
    b = ShapesSource("train", 4, height=40, width=56, seed=3)
    v = ShapesSource("val", 4, height=40, width=56, seed=3)
    img, lab = a.load_numpy(2)
    assert img.shape == (40, 56, 3) and img.dtype == np.uint8 and lab.shape == (40, 56)
    np.testing.assert_array_equal(img, b.load_numpy(2)[0])
    assert not np.array_equal(img, v.load_numpy(2)[0])
    assert set(np.unique(lab)) <= set(range(5))


def _colour_codes(src, n):
    out = []
    for i in range(n):
        img, lab = src.load_numpy(i)
        q = (img // 32).astype(np.int64)
        out.append((q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2], lab > 0))
    return out


def test_shapes_is_not_solved_by_colour():
    """A colour lookup (512 colour bins, fitted on training images) cannot find the objects of
    other images: object and background colours come from the same distribution."""
    train = _colour_codes(ShapesSource("train", 60, height=64, width=64), 60)
    val = _colour_codes(ShapesSource("val", 60, height=64, width=64), 60)
    fg = np.bincount(np.concatenate([c[m] for c, m in train]), minlength=512)
    bg = np.bincount(np.concatenate([c[~m] for c, m in train]), minlength=512)
    rule = fg > bg
    pred = np.concatenate([rule[c].ravel() for c, _ in val])
    truth = np.concatenate([m.ravel() for _, m in val])
    fg_iou = (pred & truth).sum() / max((pred | truth).sum(), 1)
    assert fg_iou < 0.25, fg_iou
    assert (pred == truth).mean() <= 1 - truth.mean() + 0.01  # no better than "all background"


def test_training_pipeline_shapes_dtypes_and_resume_determinism():
    src = ShapesSource("train", 12, height=32, width=32)
    ds, steps = training_dataset(src, (24, 20), 4, epochs=3, seed=7)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert steps == 3 and len(batches) == 9
    x, y = batches[0]
    assert x.shape == (4, 24, 20, 3) and x.dtype == np.uint8
    assert y.shape == (4, 24, 20) and y.dtype == np.uint8
    # epochs differ in order, and a pipeline started at epoch 2 gives exactly epoch 2's batches
    assert not np.array_equal(batches[0][0], batches[3][0])
    resumed, _ = training_dataset(src, (24, 20), 4, epochs=3, initial_epoch=2, seed=7)
    for (rx, ry), (bx, by) in zip(resumed, batches[6:]):
        np.testing.assert_array_equal(rx.numpy(), bx)
        np.testing.assert_array_equal(ry.numpy(), by)


def test_evaluation_pipeline_keeps_order_and_remainder():
    src = ShapesSource("val", 5, height=16, width=16)
    batches = list(evaluation_dataset(src, (16, 16), 2))
    assert [len(x) for x, _ in batches] == [2, 2, 1]
    np.testing.assert_array_equal(batches[2][1].numpy()[0], src.load_numpy(4)[1])


def test_too_few_examples_for_a_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot fill one batch of 8"):
        training_dataset(ShapesSource("train", 3, height=8, width=8), (8, 8), 8, epochs=1)


# -- folder datasets ------------------------------------------------------------------------
def problems_of(root, **kw):
    report = FolderSource(root, "train", val_fraction=0, **kw).scan()
    return " | ".join(f"{f}: {p}" for f, p in report.problems)


def test_good_folder_loads_and_streams(tmp_path):
    root = make_folder(tmp_path / "ok", n=4)
    src = FolderSource(root, "train", val_fraction=0)
    report = src.scan()
    assert report.ok and report.num_examples == 4 and report.sizes == {(16, 20): 4}
    np.testing.assert_allclose(report.frequencies(), [0.5, 0.5])
    x, y = next(iter(evaluation_dataset(src, (8, 10), 4)))
    assert x.shape == (4, 8, 10, 3) and y.shape == (4, 8, 10)


def test_training_validation_and_the_runtime_see_the_same_pixels(tmp_path):
    # One decode (PIL) and one resize (kseg.resize) for tf.data, the JAX loader and the deploy
    # runtime: export-time scores are the runtime's, and a JPEG is not decoded two ways.
    from kseg.data.batches import Examples
    from kseg.resize import resize_image

    root = make_folder(tmp_path / "ok", n=2, size=(64, 48))
    photo = np.zeros((48, 64, 3), np.uint8)
    photo[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)  # smooth ramps + an edge: chroma
    photo[..., 1] = np.linspace(0, 255, 48, dtype=np.uint8)[:, None]  # subsampling and DCT
    photo[20:30, 10:40] = (250, 10, 120)                            # rounding both show up
    Image.fromarray(photo).save(root / "images" / "im1.jpg", quality=75)
    src = FolderSource(root, "train", val_fraction=0)
    x, _ = next(iter(evaluation_dataset(src, (30, 40), 2)))
    for i, (image_path, _) in enumerate(src.pairs):
        with Image.open(image_path) as im:
            want = resize_image(np.asarray(im.convert("RGB")), (30, 40))
        np.testing.assert_array_equal(x.numpy()[i], want)
        np.testing.assert_array_equal(Examples(src, (30, 40))(i)[0], want)


def test_split_carving_is_deterministic_and_disjoint(tmp_path):
    root = make_folder(tmp_path / "ok", n=10)
    train = FolderSource(root, "train", val_fraction=0.3)
    val = FolderSource(root, "val", val_fraction=0.3)
    assert len(train) == 7 and len(val) == 3
    assert not set(train.pairs) & set(val.pairs)
    assert FolderSource(root, "val", val_fraction=0.3).pairs == val.pairs


def test_missing_label(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "labels" / "im1.png").unlink()
    assert "im1.jpg: missing label" in problems_of(root)


def test_label_without_image(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "images" / "im2.jpg").unlink()
    assert "im2.png: label without image" in problems_of(root)


def test_size_mismatch(tmp_path):
    root = make_folder(tmp_path / "d")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "labels" / "im0.png")
    assert "im0.png: size 10x10 differs from its image im0.jpg (20x16)" in problems_of(root)


def test_truncated_and_unreadable_files(tmp_path):
    root = make_folder(tmp_path / "d")
    data = (root / "images" / "im0.jpg").read_bytes()
    (root / "images" / "im0.jpg").write_bytes(data[: len(data) // 2])
    (root / "labels" / "im1.png").write_bytes(b"not a png at all")
    found = problems_of(root)
    assert "im0.jpg: unreadable or truncated image" in found
    assert "im1.png: unreadable or truncated label" in found


def test_bad_label_value_and_remap(tmp_path):
    root = make_folder(tmp_path / "d", label_value=7)
    assert "label value(s) 7 are neither a class (0..1) nor the ignore index 255" in problems_of(root)
    assert problems_of(root, remap={7: 1}) == ""
    assert problems_of(root, remap={7: "ignore"}) == ""


def test_rgb_label_is_rejected(tmp_path):
    root = make_folder(tmp_path / "d")
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(root / "labels" / "im0.png")
    assert "label has mode RGB" in problems_of(root)


def test_empty_folder_and_missing_parts(tmp_path):
    root = make_folder(tmp_path / "d", n=0)
    with pytest.raises(DatasetError, match="empty dataset"):
        FolderSource(root, "train", val_fraction=0).scan().raise_if_bad()
    with pytest.raises(DatasetError, match="folder does not exist"):
        FolderSource(tmp_path / "nowhere")
    (tmp_path / "bare" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="missing folder"):
        FolderSource(tmp_path / "bare")
    (tmp_path / "bare" / "labels").mkdir()
    with pytest.raises(DatasetError, match="no classes.txt"):
        FolderSource(tmp_path / "bare")


def test_parse_remap():
    assert parse_remap("11:ignore,255:1") == {11: "ignore", 255: 1}
    with pytest.raises(ValueError, match="bad remap entry"):
        parse_remap("11-3")


def test_data_check_cli_exit_codes(tmp_path):
    root = make_folder(tmp_path / "d")
    runner = CliRunner()
    ok = runner.invoke(main, ["data", "check", str(root), "--val-fraction", "0"])
    assert ok.exit_code == 0, ok.output
    assert "3 valid pairs" in ok.output and "fg" in ok.output
    (root / "labels" / "im0.png").unlink()
    bad = runner.invoke(main, ["data", "check", str(root), "--val-fraction", "0"])
    assert bad.exit_code == 1
    assert "missing label" in bad.output


# -- real data (skipped where ../shared/data is absent) ------------------------------------
def test_camvid_folder_loads():
    root = shared("camvid")
    train = open_source(str(root), "train", remap={11: "ignore"})
    assert len(train) == 367 and len(train.classes) == 11
    x, y = next(iter(evaluation_dataset(train, (90, 120), 2)))
    assert x.shape == (2, 90, 120, 3)
    assert set(np.unique(y.numpy())) <= set(range(11)) | {255}
    report = open_source(str(root), "val", remap={11: "ignore"}).scan()
    assert report.ok and report.num_examples == 101 and report.sizes == {(360, 480): 101}


def test_isbi_folder_loads_with_remap():
    root = shared("isbi2012", "train")
    src = open_source(str(root), "train", classes=["membrane", "cell"], remap={255: 1})
    report = src.scan()
    assert report.ok and report.num_examples == 20
    assert 0.15 < report.frequencies()[0] < 0.3  # membrane share
    image, label = src.load_numpy(0)
    assert image.shape == (512, 512, 3) and set(np.unique(label)) == {0, 1}


def test_suspicious_but_valid_data_gets_warnings(tmp_path):
    root = make_folder(tmp_path / "d", label_value=255)  # half of each label is the ignore index
    report = FolderSource(root, "train", val_fraction=0).scan()
    assert report.ok
    assert report.warnings() == ["class 1 (fg) has no labelled pixels"]
    r = CliRunner().invoke(main, ["data", "check", str(root), "--val-fraction", "0"])
    assert r.exit_code == 0 and "warning:" in r.output and "class 1 (fg) has no labelled pixels" in r.output


def test_data_check_and_train_see_every_split_of_a_single_folder(tmp_path):
    """A bad pair among the carved validation pairs is found, named with its split, and refused by
    kseg train before it writes anything; a split the folder does not have is refused by name."""
    from conftest import make_folder

    root = make_folder(tmp_path / "single", n=5, size=(32, 32))
    (val_image, val_label), = FolderSource(root, "val", val_fraction=0.2).pairs
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(val_label)  # wrong size, in val only
    r = CliRunner().invoke(main, ["data", "check", str(root)])
    assert r.exit_code == 1
    assert "[train]" in r.output and "[val]" in r.output
    assert "[val split]" in r.output and val_label.name in r.output
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--data", str(root), "--image-size", "32", "32",
                                  "--epochs", "1", "--out", str(run)])
    assert r.exit_code == 1 and val_label.name in r.output
    assert not run.exists()
    # no test split in a single folder: named, with the splits it has
    r = CliRunner().invoke(main, ["data", "check", str(root), "--split", "test"])
    assert r.exit_code == 1 and "no split 'test'" in r.output and "train and val" in r.output
    # once fixed, a run trains; evaluating it on a test split the data does not have is refused
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(val_label)
    r = CliRunner().invoke(main, ["train", "--data", str(root), "--image-size", "32", "32",
                                  "-o", "depth=1", "-o", "base_filters=2", "--batch-size", "2",
                                  "--epochs", "1", "--out", str(run)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(run), "--split", "test"])
    assert r.exit_code == 1 and "no split 'test'" in r.output and "train and val" in r.output


def test_contiguous_validation_blocks_for_serial_data():
    from kseg.data.pairs import carve_split

    keys = [f"{i}" for i in range(25)]  # 0..24: lexicographic order would put 10 before 2
    assert carve_split(keys, "val", 0.2, 0, "last") == ["20", "21", "22", "23", "24"]
    assert carve_split(keys, "val", 0.2, 0, "first") == ["0", "1", "2", "3", "4"]
    train = carve_split(keys, "train", 0.2, 0, "last")
    assert train == [str(i) for i in range(20)]
    random_val = carve_split(keys, "val", 0.2, 0, "random")
    assert len(random_val) == 5 and random_val != ["20", "21", "22", "23", "24"]
    with pytest.raises(ValueError, match="val_split"):
        carve_split(keys, "val", 0.2, 0, "middle")


def test_val_split_from_the_command_line(tmp_path):
    from conftest import make_folder

    root = make_folder(tmp_path / "serial", n=10, size=(16, 16))
    r = CliRunner().invoke(main, ["data", "check", str(root), "--split", "val",
                                  "--val-split", "last"])
    assert r.exit_code == 0, r.output
    assert "2 valid pairs" in r.output and "val_split=last" in r.output
    held = FolderSource(root, "val", val_fraction=0.2, val_split="last").pairs
    assert [p[0].stem for p in held] == ["im8", "im9"]


def test_a_single_folder_as_validation_data_serves_all_its_pairs(tmp_path):
    """--val-data FOLDER opens the folder's "val" split with --val-fraction 0: every pair."""
    from conftest import make_folder

    root = make_folder(tmp_path / "v", n=4, size=(16, 16))
    assert len(FolderSource(root, "val", val_fraction=0).pairs) == 4
    r = CliRunner().invoke(main, ["data", "check", str(root), "--val-fraction", "0"])
    assert r.exit_code == 0 and r.output.count("valid pairs") == 1  # one set, checked once
