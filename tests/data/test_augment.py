import numpy as np

from aerialseg.classes import DUBAI, IGNORE_INDEX
from aerialseg.data.augment import class_mix, colour, zoomed_crop
from aerialseg.data.segmentation import Batches, Recipe, load_dataset


def _ramp(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose red channel is the column index (so a crop's span tells its scale) and
    labels in vertical bands of 5 classes plus an ignored band."""
    cols = np.tile(np.arange(w, dtype=np.int64), (h, 1))
    image = np.stack([cols % 256, cols // 256, np.zeros_like(cols)], -1).astype(np.uint8)
    labels = ((cols // 20) % 6).astype(np.uint8)
    labels[labels == 5] = IGNORE_INDEX
    return image, labels


def test_zoom_1_is_a_plain_crop():
    image, labels = _ramp(100, 300)
    img, lab = zoomed_crop(image, labels, 64, 1.0, np.random.default_rng(0))
    x0 = int(img[0, 0, 0]) + 256 * int(img[0, 0, 1])
    assert np.array_equal(lab, labels[: lab.shape[0], x0 : x0 + 64])
    assert img.shape == (64, 64, 3)


def test_zoom_sees_patches_at_scales_within_the_range_and_invents_no_labels():
    image, labels = _ramp(600, 600)
    rng = np.random.default_rng(1)
    spans = []
    for _ in range(60):
        img, lab = zoomed_crop(image, labels, 64, 2.0, rng)
        assert img.shape == (64, 64, 3) and lab.shape == (64, 64)
        assert set(np.unique(lab)) <= set(np.unique(labels))  # nearest: no new label values
        col = img[0, :, 0].astype(int) + 256 * img[0, :, 1].astype(int)
        spans.append((col[-1] - col[0]) / 63)  # source pixels per output pixel = 1 / scale
    spans = np.array(spans)
    assert spans.min() >= 0.5 - 0.05 and spans.max() <= 2.0 + 0.1
    assert spans.min() < 0.75 and spans.max() > 1.5  # both zoomed in and zoomed out


def test_zoom_out_of_a_small_image_takes_what_there_is():
    image, labels = _ramp(40, 50)
    img, lab = zoomed_crop(image, labels, 32, 4.0, np.random.default_rng(2))
    assert img.shape == (32, 32, 3) and lab.shape == (32, 32)


def test_colour_is_off_at_strength_0_and_reproducible_otherwise():
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)
    assert colour(batch, np.random.default_rng(0), 0.0) is batch
    a = colour(batch, np.random.default_rng(5), 1.0)
    b = colour(batch, np.random.default_rng(5), 1.0)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == batch.shape
    changed = np.abs(a.astype(int) - batch).mean(axis=(1, 2, 3))
    assert (changed > 0.5).all()  # every patch shifted...
    assert (changed < 60).all()  # ...but still the same picture


def test_colour_shifts_white_balance_per_patch():
    grey = np.full((40, 8, 8, 3), 128, dtype=np.uint8)
    out = colour(grey, np.random.default_rng(4), 1.0).astype(int)
    red_minus_blue = out[..., 0].mean(axis=(1, 2)) - out[..., 2].mean(axis=(1, 2))
    assert red_minus_blue.min() < -5 and red_minus_blue.max() > 5  # warmer and cooler patches


def test_batches_with_zoom_and_colour_keep_labels_valid(tiny_dataset):
    samples = load_dataset(tiny_dataset, DUBAI)
    b = Batches(samples, 32, 4, jitter=0.1, patches_per_epoch=8, zoom=2.0, color=1.0)
    for x, y in b.epoch(np.random.default_rng(0)):
        assert x.shape == (4, 3, 32, 32) and y.shape == (4, 32, 32)
        assert set(y.unique().tolist()) <= set(range(6)) | {IGNORE_INDEX}
    again = [y for _, y in b.epoch(np.random.default_rng(0))]
    first = [y for _, y in b.epoch(np.random.default_rng(0))]
    assert all((p == q).all() for p, q in zip(again, first))


def test_class_mix_pastes_half_the_source_classes_and_only_their_pixels():
    image, labels = _ramp(40, 120)  # bands of classes 0-4 and an ignored band
    target = np.full((40, 120, 3), 7, np.uint8), np.full((40, 120), 9, np.uint8)
    priority = np.ones(256)
    priority[[3, 1, 4]] = 0.1, 0.2, 0.3  # of the 5 source classes, ceil(5 / 2) = 3 go
    img, lab = class_mix(*target, image, labels, priority)
    pasted = np.isin(labels, [1, 3, 4])
    assert np.array_equal(lab[pasted], labels[pasted]) and (lab[~pasted] == 9).all()
    assert np.array_equal(img[pasted], image[pasted]) and (img[~pasted] == 7).all()
    assert (target[1] == 9).all()  # the inputs are left as they were


def test_class_mix_takes_a_one_class_source_whole_and_never_pastes_unlabelled():
    src = np.zeros((8, 8), np.uint8)
    src[:, :2] = IGNORE_INDEX
    target = np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 2, np.uint8)
    _, lab = class_mix(*target, np.ones((8, 8, 3), np.uint8), src, np.random.rand(256))
    assert (lab[:, 2:] == 0).all() and (lab[:, :2] == 2).all()


def test_batches_with_classmix_paste_another_patchs_pixels_where_they_change(tiny_dataset):
    samples = load_dataset(tiny_dataset, DUBAI)
    mixed = Batches(samples, 32, 4, patches_per_epoch=8, classmix=1.0)
    recipes = list(mixed.plans(np.random.default_rng(0)))
    changed = 0
    for recipe in recipes:
        assert [j for j, _, _ in recipe.mix] == [0, 1, 2, 3]  # classmix 1: every patch
        x0, y0 = mixed.make(Recipe(recipe.crops, None, None))  # the same crops, unmixed
        x, y = mixed.make(recipe)
        for j, q, _ in recipe.mix:
            assert q != j
            moved = (y[j] != y0[j]) | (x[j] != x0[j]).any(0)
            assert (y[j][moved] == y0[q][moved]).all() and (x[j][:, moved] == x0[q][:, moved]).all()
            changed += int(moved.sum())
    assert changed > 0
