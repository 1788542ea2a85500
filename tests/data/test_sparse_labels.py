"""Partial (sparse) labels: index masks with 255 = unlabelled, colour masks with unpainted
pixels; training and evaluation see only the labelled pixels."""

import numpy as np
import pytest
import torch
from PIL import Image

from aerialseg.classes import DUBAI, IGNORE_INDEX
from aerialseg.data.segmentation import load_dataset, read_labels
from aerialseg.errors import AerialSegError
from aerialseg.metrics import SegmentationMetrics

from ..helpers import make_scene


def sparse(labels: np.ndarray, keep: float, seed: int = 0) -> np.ndarray:
    """``labels`` with all but a ``keep`` share of rows set to 255 (unlabelled)."""
    out = np.full_like(labels, IGNORE_INDEX)
    rows = np.random.default_rng(seed).random(labels.shape[0]) < keep
    out[rows] = labels[rows]
    return out


def test_index_png_255_is_unlabelled(tmp_path):
    _, labels = make_scene(40, 50, seed=1)
    part = sparse(labels, 0.3)
    Image.fromarray(part).save(tmp_path / "m.png")  # mode L: class indices
    read, unknown = read_labels(tmp_path / "m.png", DUBAI)
    assert np.array_equal(read, part) and unknown == 0


def test_colour_mask_unpainted_colour_is_unlabelled_and_reported(tmp_path):
    _, labels = make_scene(40, 50, seed=2)
    part = sparse(labels, 0.5)
    Image.fromarray(DUBAI.colorize(part)).save(tmp_path / "m.png")  # unpainted: black
    read, unknown = read_labels(tmp_path / "m.png", DUBAI)
    assert np.array_equal(read, part)
    assert unknown == np.count_nonzero(part == IGNORE_INDEX)


def test_index_value_that_is_no_class(tmp_path):
    labels = np.full((20, 30), IGNORE_INDEX, np.uint8)
    labels[3, 7] = 6  # 6 classes: 0-5
    labels[4, 4] = 2
    Image.fromarray(labels).save(tmp_path / "m.png")
    with pytest.raises(AerialSegError, match=r"m\.png: label value 6 at x=7, y=3 is no class"):
        read_labels(tmp_path / "m.png", DUBAI, strict=True)
    read, unknown = read_labels(tmp_path / "m.png", DUBAI)  # a dataset: ignored, counted
    assert read[3, 7] == IGNORE_INDEX and read[4, 4] == 2 and unknown == 1


def test_one_band_geotiff_255_is_unlabelled_not_unknown(tmp_path):
    pytest.importorskip("rasterio")
    from ..geo_helpers import write_raster

    _, labels = make_scene(40, 50, seed=3)
    part = sparse(labels, 0.4)
    part[0, 0] = 9
    path = write_raster(tmp_path / "m.tif", part[None])
    read, unknown = read_labels(path, DUBAI)
    expect = part.copy()
    expect[0, 0] = IGNORE_INDEX
    assert np.array_equal(read, expect) and unknown == 1
    with pytest.raises(AerialSegError, match="label value 9"):
        read_labels(path, DUBAI, strict=True)


def test_sparse_dataset_trains_and_scores_only_labelled_pixels(tmp_path):
    from aerialseg.config import TrainConfig
    from aerialseg.losses import make_loss
    from aerialseg.models.checkpoint import load_checkpoint
    from aerialseg.training.segmentation import train, validate

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        photo, labels = make_scene(64, 64, seed=20 + i)
        Image.fromarray(photo).save(root / "images" / f"a{i}.png")
        Image.fromarray(sparse(labels, 0.25, seed=i)).save(root / "masks" / f"a{i}.png")
    samples = load_dataset(root, DUBAI)
    labelled = sum(int((s.labels != IGNORE_INDEX).sum()) for s in samples)
    assert 0 < labelled < 0.5 * sum(s.labels.size for s in samples)
    cfg = TrainConfig(
        data=str(root), arch="unet", patch_size=32, batch_size=4, patches_per_epoch=8,
        base_filters=4,
        examples=0, epochs=1, val_images=["a3"],
    )  # fmt: skip
    result = train(cfg, tmp_path / "run", log=lambda s: None, progress=False)
    assert np.isfinite(result["last"]["val_loss"])
    model, classes, _ = load_checkpoint(tmp_path / "run" / "last.safetensors")
    scored = validate(model, samples, classes, make_loss("dice+focal"), "fp32")
    assert scored["pixels"] == labelled  # the unlabelled pixels count nowhere


def test_metrics_ignore_unlabelled_pixels_whatever_is_predicted():
    target = torch.full((1, 4, 4), IGNORE_INDEX)
    target[0, 0] = torch.tensor([0, 1, 2, 3])
    a, b = torch.zeros(1, 4, 4, dtype=torch.long), torch.full((1, 4, 4), 5)
    a[0, 0] = b[0, 0] = torch.tensor([0, 1, 2, 0])
    m1, m2 = SegmentationMetrics(6), SegmentationMetrics(6)
    m1.update(target, a)
    m2.update(target, b)
    assert torch.equal(m1.confusion, m2.confusion)
    assert m1.compute()["pixels"] == 4 and m1.compute()["pixel_accuracy"] == 0.75
