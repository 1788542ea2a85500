import numpy as np
import pytest
from PIL import Image

from aerialseg.classes import DUBAI, IGNORE_INDEX
from aerialseg.data.segmentation import Batches, dihedral, find_pairs, load_dataset
from aerialseg.data.splits import grid_patches, split_images, split_patches_random
from aerialseg.errors import AerialSegError

from ..helpers import make_scene, write_pair


def test_finds_kaggle_layout_with_spaces_in_names(tiny_dataset):
    pairs = find_pairs(tiny_dataset)
    assert [p.id for p in pairs][:2] == ["Tile 1/image_part_001", "Tile 1/image_part_002"]
    assert len(pairs) == 6 and {p.group for p in pairs} == {"Tile 1", "Tile 2"}


def test_plain_layout_and_natural_order(tmp_path):
    for i in (10, 2, 1):
        write_pair(tmp_path, f"img{i}", *make_scene(40, 40, i))
    assert [p.id for p in find_pairs(tmp_path)] == ["img1", "img2", "img10"]


def test_decodes_palette_and_rgb_masks_to_the_same_labels(tiny_dataset):
    samples = load_dataset(tiny_dataset, DUBAI)
    for s in samples:
        _, labels = make_scene(80, 96, seed=10 * int(s.group[-1]) + int(s.id[-1]))
        assert np.array_equal(s.labels, labels), s.id
        assert s.image.shape == (80, 96, 3) and s.image.dtype == np.uint8


def test_unknown_mask_colours_are_ignored_and_counted(tmp_path):
    photo, labels = make_scene(40, 40, 1)
    write_pair(tmp_path, "a", photo, labels)
    rgb = np.array(Image.open(tmp_path / "masks/a.png").convert("RGB"))
    rgb[:5] = 0  # black rows: no class
    Image.fromarray(rgb).save(tmp_path / "masks/a.png")
    (s,) = load_dataset(tmp_path, DUBAI)
    assert (s.labels[:5] == IGNORE_INDEX).all() and s.unknown_pixels == 5 * 40
    assert (s.labels[5:] == labels[5:]).all()


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: (r / "masks/b.png").unlink(), "b.jpg: image has no mask"),
        (lambda r: (r / "images/b.jpg").unlink(), "b.png: mask has no image"),
        (lambda r: Image.new("RGB", (30, 40)).save(r / "masks/b.png"), "mask is 30x40 but"),
        (lambda r: (r / "images/b.jpg").write_bytes(b"\xff\xd8\xff garbage"), "cannot read image"),
        (lambda r: Image.new("L", (40, 40)).save(r / "images/b.jpg"), "grayscale"),
        (
            lambda r: (
                Image.new("RGBA", (40, 40)).save(r / "images/b.png")
                or (r / "images/b.jpg").unlink()
            ),
            "alpha",
        ),
        (
            lambda r: (
                Image.new("I;16", (40, 40)).save(r / "images/b.png")
                or (r / "images/b.jpg").unlink()
            ),
            "16-bit",
        ),
    ],
)
def test_bad_inputs_name_the_file_and_the_problem(tmp_path, breakage, message):
    for stem in ("a", "b"):
        write_pair(tmp_path, stem, *make_scene(40, 40, 3))
    breakage(tmp_path)
    with pytest.raises(AerialSegError, match=message):
        load_dataset(tmp_path, DUBAI)


def test_truncated_image_is_reported(tmp_path):
    write_pair(tmp_path, "a", *make_scene(64, 64, 3))
    data = (tmp_path / "images/a.jpg").read_bytes()
    (tmp_path / "images/a.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(AerialSegError, match="a.jpg: cannot read image"):
        load_dataset(tmp_path, DUBAI)


def test_missing_empty_and_too_small(tmp_path):
    with pytest.raises(AerialSegError, match="no such data folder"):
        find_pairs(tmp_path / "nope")
    with pytest.raises(AerialSegError, match="no image/mask pairs"):
        find_pairs(tmp_path)
    write_pair(tmp_path, "a", *make_scene(40, 48, 3))
    with pytest.raises(AerialSegError, match="48x40 is smaller than the 64x64 patch"):
        load_dataset(tmp_path, DUBAI, min_size=64)


def test_image_split_never_leaks_and_is_deterministic(tiny_dataset):
    samples = load_dataset(tiny_dataset, DUBAI)
    for seed in range(5):
        train, val = split_images(samples, 0.34, seed)
        assert not {s.id for s in train} & {s.id for s in val}
        assert len(train) + len(val) == len(samples)
        assert {s.group for s in val} == {"Tile 1", "Tile 2"}  # every tile on both sides
        again = split_images(samples, 0.34, seed)[1]
        assert [s.id for s in again] == [s.id for s in val]


def test_named_held_out_tiles_and_images(tiny_dataset):
    samples = load_dataset(tiny_dataset, DUBAI)
    train, val = split_images(samples, val_groups=["Tile 2"])
    assert {s.group for s in val} == {"Tile 2"} and {s.group for s in train} == {"Tile 1"}
    _, val = split_images(samples, val_ids=["Tile 1/image_part_003"])
    assert [s.id for s in val] == ["Tile 1/image_part_003"]
    with pytest.raises(AerialSegError, match="Tile 9"):
        split_images(samples, val_groups=["Tile 9"])


def test_seed_patch_split_crops_to_grid_and_splits_patches(tiny_dataset):
    samples = load_dataset(tiny_dataset, DUBAI)
    patches = grid_patches(samples, 32)
    assert len(patches) == 6 * (80 // 32) * (96 // 32)
    assert all(p.image.shape == (32, 32, 3) for p in patches)
    train, val = split_patches_random(samples, 32, 0.2, seed=42)
    assert len(val) == round(0.2 * len(patches)) and len(train) + len(val) == len(patches)
    assert not {p.id for p in train} & {p.id for p in val}


def test_dihedral_gives_eight_distinct_transforms():
    a = np.arange(9).reshape(3, 3)
    outs = {dihedral(a, k).tobytes() for k in range(8)}
    assert len(outs) == 8


def test_random_crop_batches_keep_image_and_labels_aligned(tiny_dataset):
    samples = load_dataset(tiny_dataset, DUBAI)
    b = Batches(samples, 32, 4, augment=True, jitter=0.0, patches_per_epoch=10)
    batches = list(b.epoch(np.random.default_rng(0)))
    assert len(batches) == len(b) == 3
    x, y = batches[0]
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 32, 32)
    # the synthetic photo colour is a function of the label: check it survived flips/crops
    from ..helpers import PHOTO_COLORS

    for xi, yi in zip(x, y):
        expected = PHOTO_COLORS[yi.numpy()].astype(float)
        assert np.abs(xi.permute(1, 2, 0).numpy() - expected).mean() < 20


def test_patch_mode_visits_every_patch_each_epoch(tiny_dataset):
    patches = grid_patches(load_dataset(tiny_dataset, DUBAI), 32)
    b = Batches(patches, 32, 5, mode="patches", augment=False)
    seen = [y for _, y in b.epoch(np.random.default_rng(1))]
    assert sum(len(y) for y in seen) == len(patches)


def test_real_dubai_dataset_reads_and_splits(real_data):
    samples = load_dataset(real_data, DUBAI, min_size=256)
    assert len(samples) >= 63 and {s.group for s in samples} >= {f"Tile {i}" for i in range(1, 8)}
    labelled = sum(int((s.labels != IGNORE_INDEX).sum()) for s in samples)
    assert labelled / sum(s.area for s in samples) > 0.99
    present = np.zeros(256, bool)
    for s in samples:
        present[np.unique(s.labels)] = True
    assert present[:6].all()  # every one of the six classes occurs with its real colour
    train, val = split_images(samples, 0.2, seed=0)
    assert not {s.id for s in train} & {s.id for s in val}
    assert {s.group for s in val} == {s.group for s in samples}
