"""Whole-image evaluation: per-image scores that add up, and which images are scored."""

from __future__ import annotations

import numpy as np
import pytest

from aerialseg.data.segmentation import Sample
from aerialseg.errors import AerialSegError
from aerialseg.inference.evaluate import evaluate, images_to_score
from aerialseg.inference.segmenter import load_segmenter

from ..helpers import make_scene


def _samples(n: int) -> list[Sample]:
    out = []
    for i in range(n):
        photo, labels = make_scene(48, 64, seed=i)
        out.append(Sample(f"Tile {i % 2 + 1}/image_{i}", f"Tile {i % 2 + 1}", photo, labels))
    return out


def test_per_image_scores_add_up_to_the_whole(tiny_model):
    samples = _samples(3)
    result = evaluate(load_segmenter(tiny_model), samples)
    rows = result["per_image"]
    assert [r["image"] for r in rows] == [s.id for s in samples]
    pixels = np.array([r["pixels"] for r in rows])
    assert pixels.sum() == np.sum(result["confusion_matrix"]) == 3 * 48 * 64
    weighted = np.dot(pixels, [r["pixel_accuracy"] for r in rows]) / pixels.sum()
    assert weighted == pytest.approx(result["pixel_accuracy"])


def test_auto_scores_only_what_the_model_never_trained_on(tmp_path):
    samples = _samples(4)
    meta = {"val_images": [samples[1].id], "train_config": {"data": str(tmp_path)}}
    # its own folder (same path): the validation images, and it says so
    chosen, why = images_to_score(samples, meta, tmp_path, "auto")
    assert [s.id for s in chosen] == [samples[1].id] and "held-out validation" in why
    # a copy elsewhere holding its validation images is the same data
    chosen, _ = images_to_score(samples, meta, tmp_path / "copy", "auto")
    assert [s.id for s in chosen] == [samples[1].id]
    # data it never saw: every image
    other = {"val_images": ["elsewhere/x"], "train_config": {"data": "/somewhere/else"}}
    chosen, why = images_to_score(samples, other, tmp_path, "auto")
    assert len(chosen) == 4 and "never trained on this data" in why
    # all: every image, and a warning when training images are among them
    chosen, why = images_to_score(samples, meta, tmp_path, "all")
    assert len(chosen) == 4 and "optimistic" in why


def test_a_random_patch_model_has_no_held_out_image(tmp_path):
    samples = _samples(2)
    meta = {"split": "random-patch", "val_images": [samples[0].id]}
    chosen, why = images_to_score(samples, meta, tmp_path, "auto")
    assert len(chosen) == 2 and "none is held out" in why
    with pytest.raises(AerialSegError, match="no held-out image"):
        images_to_score(samples, meta, tmp_path, "val")
    with pytest.raises(AerialSegError, match="none of the model's validation images"):
        images_to_score(samples, {"val_images": ["x/y"]}, tmp_path, "val")


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(AerialSegError, match="unknown split 'train'"):
        images_to_score(_samples(1), {}, tmp_path, "train")


def test_images_a_finetune_learned_from_are_not_scored(tmp_path):
    """The record names the painted images by content: a copy elsewhere, under a stem that
    every tile has, leaves out that image only, for its own and its children's scores."""
    import shutil

    from PIL import Image

    from aerialseg.io.files import file_digest

    samples = _samples(4)  # Tile 1/image_0, Tile 2/image_1, Tile 1/image_2, Tile 2/image_3
    for s in samples:
        for kind, a in (("images", s.image), ("masks", s.labels)):
            (tmp_path / s.group / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(tmp_path / s.group / kind / f"{s.id.split('/')[1]}.png")
    copy = tmp_path / "user" / "image_0.png"  # the user's copy of Tile 2/image_1
    copy.parent.mkdir()
    shutil.copy(tmp_path / "Tile 2/images/image_1.png", copy)
    painted = {"image": "image_0", "bytes": copy.stat().st_size, "sha256": file_digest(copy)}
    meta = {
        "val_images": [s.id for s in samples[:3]],
        "train_config": {"data": str(tmp_path)},
        "finetune": {"images": [painted], "parent": {"finetune": None}},
    }
    chosen, why = images_to_score(samples, meta, tmp_path, "auto")
    assert [s.id for s in chosen] == ["Tile 1/image_0", "Tile 1/image_2"]
    assert "1 that fine-tuned it left out" in why
    chosen, _ = images_to_score(samples, meta, tmp_path, "val")
    assert [s.id for s in chosen] == ["Tile 1/image_0", "Tile 1/image_2"]
    chosen, why = images_to_score(samples, meta, tmp_path, "all")
    assert len(chosen) == 4 and "optimistic" in why
    # a fine-tune of that fine-tuned model inherits the exclusion (the parent's record)
    child = {**meta, "finetune": {"images": [], "parent": {"finetune": meta["finetune"]}}}
    chosen, _ = images_to_score(samples, child, tmp_path, "auto")
    assert "Tile 2/image_1" not in {s.id for s in chosen}
    # on data it never trained on (another folder), the painted image is still left out
    other = {**meta, "val_images": [], "train_config": {"data": "/elsewhere"}}
    chosen, why = images_to_score(samples, other, tmp_path, "auto")
    assert len(chosen) == 3 and "never trained on this data; 1 that fine-tuned" in why
