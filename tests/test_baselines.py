"""The classic baselines on synthetic scenes whose photo colours separate the classes."""

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from aerialseg.baselines import FEATURES, PixelBaseline, pixel_features, run_baseline  # noqa: E402
from aerialseg.classes import DUBAI  # noqa: E402
from aerialseg.data.segmentation import load_dataset  # noqa: E402
from aerialseg.data.splits import split_images  # noqa: E402
from aerialseg.errors import AerialSegError  # noqa: E402

from .helpers import aerialseg_here as run_aerialseg  # noqa: E402  (main() in this process)


def test_pixel_features():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    f = pixel_features(rgb)
    assert f.shape == (1200, len(FEATURES)) and f.dtype == np.float32
    assert np.isfinite(f).all()
    assert np.allclose(f[:, :3], rgb.reshape(-1, 3) / 255)


@pytest.mark.parametrize("method, floor", [("kmeans", 0.8), ("svm", 0.9), ("random-forest", 0.9)])
def test_baselines_beat_chance_on_separable_colours(tiny_dataset, method, floor):
    lines = []
    r = run_baseline(method, tiny_dataset, 0.34, max_pixels=3000, progress=False, log=lines.append)
    # chance: always answering the most common class of the held-out pixels
    val = split_images(load_dataset(tiny_dataset, DUBAI), 0.34, 0)[1]
    counts = np.bincount(np.concatenate([s.labels.ravel() for s in val]), minlength=256)[:6]
    chance = counts.max() / counts.sum()
    assert r["pixel_accuracy"] > max(floor, chance + 0.2), (r["pixel_accuracy"], chance)
    assert r["images"] == [s.id for s in val]
    assert np.array(r["confusion_matrix"]).sum() == counts.sum()
    assert r["train_pixels"] == 3000 and r["predict_seconds_per_megapixel"] > 0
    assert lines and lines[0].startswith(f"{method}: trained on 3,000 pixels")


def test_kmeans_is_reported_as_unsupervised(tiny_dataset):
    r = run_baseline("kmeans", tiny_dataset, 0.34, max_pixels=2000, clusters=8, progress=False)
    assert r["clusters"] == 8 and len(r["cluster_classes"]) == 8
    assert "unsupervised" in r["note"] and r["features"] == ["red", "green", "blue"]


def test_baseline_cli_writes_segment_outputs(tiny_dataset, tmp_path):
    args = ["baseline", "--method", "random-forest", "--data", tiny_dataset]
    args += ["--val-fraction", "0.34", "--train-pixels", "2000", "--json", "-q"]
    args += ["--out", tmp_path / "o", "--confusion", tmp_path / "cm.png"]
    r = run_aerialseg(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)  # the JSON alone: log lines go to stderr
    keys = {"pixel_accuracy", "mean_iou", "mean_iou_land_cover", "micro_jaccard"}
    assert keys | {"per_class_iou", "confusion_matrix", "images"} <= set(result)
    for image_id in result["images"]:
        for suffix in ("_mask.png", "_overlay.jpg", "_figure.png", "_stats.json"):
            assert (tmp_path / "o" / f"{image_id}{suffix}").stat().st_size > 0
    assert (tmp_path / "cm.png").stat().st_size > 0
    r = run_aerialseg(*args, timeout=300)  # the outputs exist now
    assert r.returncode == 2 and r.stderr.startswith("aerialseg: error: ") and "exists" in r.stderr


def test_bad_arguments(tiny_dataset):
    with pytest.raises(AerialSegError, match="at least 2 clusters"):
        run_baseline("kmeans", tiny_dataset, clusters=1, progress=False)
    with pytest.raises(AerialSegError, match="unknown baseline"):
        PixelBaseline("knn", DUBAI)
    with pytest.raises(AerialSegError, match="no such data folder"):
        run_baseline("svm", tiny_dataset / "missing", progress=False)


def test_sampling_never_asks_for_more_pixels_than_there_are(tiny_dataset):
    from aerialseg.baselines import sample_pixels

    samples = load_dataset(tiny_dataset, DUBAI)
    x, y = sample_pixels(samples, 10**9, seed=0, colour_only=True)
    assert x.shape == (6 * 80 * 96, 3) and len(y) == len(x)
