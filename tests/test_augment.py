"""Augmentation: presets, albumentations files, object-level copy-paste and moves; one
implementation, the same batches through tf.data and the TensorFlow-free loader."""

import numpy as np
import pytest

from kseg.data import objects
from kseg.data.augment import Augmentation, scale_crop
from kseg.data.pipeline import training_dataset
from kseg.data.shapes import ShapesSource

PALETTE = np.array([[10, 10, 10], [200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)


def coded_example(h=48, w=64):
    """A label with an asymmetric layout and an image whose colour names the class."""
    label = np.zeros((h, w), np.uint8)
    label[5:20, 8:30] = 1
    label[30:44, 40:60] = 2
    label[25:40, 3:12] = 3
    return PALETTE[label], label


def assert_aligned(image, label, ignore=255):
    """Away from class borders, each labelled pixel's colour is its class's colour."""
    from scipy import ndimage

    inner = np.zeros(label.shape, bool)
    for c in range(len(PALETTE)):
        inner |= ndimage.binary_erosion(label == c, iterations=2)
    got = image[inner].astype(int)
    want = PALETTE[label[inner]].astype(int)
    assert inner.sum() > 100
    assert np.mean(np.abs(got - want).max(axis=1) < 40) > 0.98


def apply(aug, image, label, seed=(1, 2), donor=None):
    return aug(image.copy(), label.copy(), seed, donor=donor, num_classes=4)


@pytest.mark.parametrize("preset", ["none", "flip", "light", "strong"])
def test_presets_keep_shape_values_and_are_seeded(preset):
    image, label = coded_example()
    aug = Augmentation(preset)
    a = apply(aug, image, label)
    assert a[0].shape == image.shape and a[0].dtype == np.uint8 and a[1].shape == label.shape
    assert set(np.unique(a[1]).tolist()) <= {0, 1, 2, 3, 255}  # nearest: no blended label values
    b = apply(aug, image, label)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    if preset != "none":
        changed = [not np.array_equal(apply(aug, image, label, seed=(s, 0))[1], label) for s in range(8)]
        assert any(changed)


def test_scale_crop_keeps_image_and_label_aligned_and_pads_with_ignore():
    image, label = coded_example()
    for s in range(6):
        img, lab = scale_crop(image, label, np.random.default_rng([s, 3]), (0.5, 1.5), 255)
        assert_aligned(img, lab)
        if (lab == 255).any():
            assert (img[lab == 255] == 0).all()  # padding: black image, ignored label


def test_albumentations_file_pipeline_warps_image_and_mask_together(tmp_path):
    import albumentations as A

    path = tmp_path / "aug.json"
    A.save(A.Compose([A.HorizontalFlip(p=0.5),
                      A.Affine(scale=(0.7, 1.3), rotate=(-15, 15), fill_mask=255, p=1.0)]), str(path))
    aug = Augmentation(str(path))
    image, label = coded_example()
    for s in range(5):
        img, lab = apply(aug, image, label, seed=(s, 9))
        assert not np.array_equal(lab, label)
        assert_aligned(img, lab)
    with pytest.raises(ValueError, match="not found"):
        Augmentation(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{\"nope\": 1}")
    with pytest.raises(ValueError, match="not an albumentations pipeline"):
        Augmentation(str(bad))


def test_copy_paste_moves_donor_objects_with_their_pixels():
    image, label = coded_example()
    donor_label = np.zeros_like(label)
    donor_label[10:20, 45:55] = 2
    donor_image = PALETTE[donor_label]
    rng = np.random.default_rng(0)
    out_image, out_label = objects.copy_paste(image, label, donor_image, donor_label, rng, [2], flip=False)
    assert (out_label[10:20, 45:55] == 2).all()
    assert (out_image[10:20, 45:55] == PALETTE[2]).all()
    assert np.array_equal(out_label[:, :40], label[:, :40])  # nothing else touched
    assert_aligned(out_image, out_label)
    # classes not chosen are never pasted
    same = objects.copy_paste(image, label, donor_image, donor_label, rng, [1], flip=False)
    assert np.array_equal(same[1], label)


def test_object_transform_moves_one_object_and_ignores_the_hole():
    image, label = coded_example()
    rng = np.random.default_rng(3)
    out_image, out_label = objects.object_transform(image, label, rng, [1], 255, max_shift=0.25)
    before = label == 1
    after = out_label == 1
    assert after.any() and not np.array_equal(before, after)
    assert 0.5 < after.sum() / before.sum() < 1.6  # scaled by 0.8..1.2 per side
    assert ((out_label == 255) == (before & ~after)).all()  # uncovered -> ignore, nothing else
    assert_aligned(out_image, out_label)


def test_pipeline_with_copy_paste_and_object_moves_is_reproducible_on_resume():
    src = ShapesSource("train", count=12, height=32, width=32, seed=0)
    aug = Augmentation("strong", copy_paste=0.7, object_transform=0.5, object_classes=(1, 2, 3))
    full, steps = training_dataset(src, (32, 32), 4, epochs=2, augment=aug, seed=5)
    full = list(full)
    resumed = list(training_dataset(src, (32, 32), 4, epochs=2, initial_epoch=1, augment=aug, seed=5)[0])
    assert len(full) == 2 * steps
    for (x1, y1), (x2, y2) in zip(full[steps:], resumed):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert set(np.unique(np.concatenate([y for _, y in full])).tolist()) <= set(range(len(src.classes))) | {255}
    cached = list(training_dataset(src, (32, 32), 4, epochs=2, augment=aug, seed=5, cache=True)[0])
    assert len(cached) == 2 * steps


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match="probability"):
        Augmentation("light", copy_paste=1.5)


def test_object_classes_are_named_without_regard_to_case():
    from kseg.train import TrainConfig

    cfg = TrainConfig(copy_paste=0.5, object_classes=["car", "Pedestrian"])
    aug = cfg.augmentation(["Sky", "Car", "Pedestrian"])
    assert aug.object_classes == (1, 2) and aug.copy_paste == 0.5
    with pytest.raises(ValueError, match="not classes of the data"):
        TrainConfig(object_classes=["bus"]).augmentation(["Sky", "Car"])


# -- training on crops ------------------------------------------------------------------------
def find_window(big, small):
    """(y, x) where ``small`` sits in ``big`` (exactly), or None."""
    h, w = small.shape[:2]
    for y in range(big.shape[0] - h + 1):
        for x in range(big.shape[1] - w + 1):
            if np.array_equal(big[y:y + h, x:x + w], small):
                return y, x
    return None


@pytest.mark.parametrize("preset", ["none", "strong"])
def test_crop_is_a_seeded_window_of_the_augmented_example(preset):
    image, label = coded_example()
    full = Augmentation(preset)
    cropped = Augmentation(preset, crop=(24, 40))
    corners = set()
    for s in range(6):
        whole = apply(full, image, label, seed=(s, 1))
        win = apply(cropped, image, label, seed=(s, 1))
        assert win[0].shape == (24, 40, 3) and win[1].shape == (24, 40)
        corner = find_window(whole[1], win[1])
        assert corner is not None  # the other draws are untouched by the crop
        np.testing.assert_array_equal(whole[0][corner[0]:corner[0] + 24, corner[1]:corner[1] + 40],
                                      win[0])
        corners.add(corner)
    assert len(corners) > 1  # the window moves with the seed


def test_crop_larger_than_the_example_pads_with_ignore():
    image, label = coded_example(h=20, w=30)
    for out in (apply(Augmentation("none", crop=(24, 40)), image, label),):
        assert out[1].shape == (24, 40)
        assert (out[1] == 255).sum() == 24 * 40 - 20 * 30
        assert find_window(out[1], label) is not None
    with pytest.raises(ValueError, match="crop"):
        Augmentation("none", crop=(4, 40))


@pytest.mark.parametrize("cache", [None, True])
def test_repeat_draws_each_example_that_many_times_per_epoch_and_resumes(cache):
    src = ShapesSource("train", 6, height=16, width=16)
    originals = [src.load_numpy(i)[1] for i in range(6)]
    ds, steps = training_dataset(src, (16, 16), 4, epochs=2, augment="none", repeat=3, cache=cache)
    assert steps == 4  # 18 draws, full batches of 4
    batches = [y.numpy() for _, y in ds]
    assert len(batches) == 8
    first = [lab for b in batches[:4] for lab in b]
    hits = [sum(np.array_equal(lab, o) for lab in first) for o in originals]
    assert sum(hits) == 16 and max(hits) <= 3 and min(hits) >= 1
    resumed = [y.numpy() for _, y in training_dataset(src, (16, 16), 4, epochs=2, initial_epoch=1,
                                                     augment="none", repeat=3, cache=cache)[0]]
    for a, b in zip(resumed, batches[4:]):
        np.testing.assert_array_equal(a, b)


def test_numpy_batches_repeat_and_crop():
    from kseg.data.numpy_pipeline import TrainBatches

    src = ShapesSource("train", 6, height=16, width=16)
    batches = TrainBatches(src, (16, 16), 4, augment=Augmentation("none", crop=(8, 12)), repeat=3,
                           workers=2, processes=0)
    assert len(batches) == 4
    x, y = batches[0]
    assert x.shape == (4, 8, 12, 3) and y.shape == (4, 8, 12)
    order = batches.maker.order(0)
    assert len(order) == 18 and np.bincount(order, minlength=6).tolist() == [3] * 6


@pytest.mark.parametrize("cache", [None, True, "file"])
def test_tf_data_and_the_tensorflow_free_loader_give_the_same_batches(tmp_path, cache):
    """One implementation of order, resize and augmentation: a run's batches do not depend on
    the backend (a run started under TensorFlow resumes under JAX with the same batches)."""
    from kseg.data.numpy_pipeline import TrainBatches

    cache = tmp_path / "examples" if cache == "file" else cache
    src = ShapesSource("train", 10, height=40, width=48, seed=3)
    aug = Augmentation("light", copy_paste=0.5, object_classes=(1, 2, 3), crop=(24, 32))
    ds, steps = training_dataset(src, (36, 44), 4, epochs=2, augment=aug, seed=9, cache=cache)
    tf_batches = list(ds)
    loader = TrainBatches(src, (36, 44), 4, augment=aug, seed=9, cache=cache, workers=2, processes=0)
    assert len(loader) == steps and len(tf_batches) == 2 * steps
    for epoch in range(2):
        for i in range(steps):
            x, y = loader[i]
            tx, ty = tf_batches[epoch * steps + i]
            np.testing.assert_array_equal(x, tx.numpy())
            np.testing.assert_array_equal(y, ty.numpy())
        loader.on_epoch_end()


def test_a_pipeline_file_is_applied_as_written_with_no_mirror_added(tmp_path):
    # data whose labels have a left and a right (ISBI's offset, text) must never be mirrored
    # unless the file says so: presets mirror, files do exactly what they list
    import albumentations as A

    path = tmp_path / "photometric.yaml"
    A.save(A.Compose([A.RandomBrightnessContrast(p=1.0)]), str(path), data_format="yaml")
    aug = Augmentation(str(path))
    image, label = coded_example()
    for s in range(16):
        out_image, out_label = apply(aug, image, label, seed=(s, 4))
        np.testing.assert_array_equal(out_label, label)
        assert not np.array_equal(out_image, image)
