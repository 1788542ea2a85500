import json

import numpy as np
import pytest
import torch

from aerialseg.inference import familiarity as fam
from aerialseg.inference.confidence import unusual
from aerialseg.inference.segmenter import load_model
from aerialseg.io.outputs import output_paths
from aerialseg.jobs.image import segment_image_to_files
from aerialseg.models.checkpoint import load_checkpoint, update_metadata

from ..helpers import make_scene, tiny_checkpoint


def scenes(n: int, seed: int = 0) -> list[np.ndarray]:
    return [make_scene(320, 320, seed + i)[0] for i in range(n)]


def foreign(n: int, seed: int = 100) -> list[np.ndarray]:
    """Fine dark-on-white stripes, shifted and noisy: nothing like the scenes' flat colour
    blocks, and all alike (one "place")."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.full((320, 320, 3), 240, np.int16)
        for y in range(int(rng.integers(0, 6)), 320, 6):
            img[y : y + 2] = 20
        img += rng.integers(-10, 11, img.shape).astype(np.int16)
        out.append(img.astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("fam") / "m.safetensors", seed=0)


@pytest.fixture(scope="module")
def model(model_path):
    return load_checkpoint(model_path)[0]


@pytest.fixture(scope="module")
def ref(model):
    return fam.feature_reference(model, scenes(10))


def image_score(ref, model, rgb):
    return fam.score(ref, fam.window_features(model, fam.image_windows(rgb)))


def test_far_images_are_flagged_and_the_training_images_are_not(ref, model):
    for rgb in scenes(10):
        d, t = image_score(ref, model, rgb)
        assert d < t
    for rgb in foreign(3):
        d, t = image_score(ref, model, rgb)
        assert d > t


def test_the_same_image_gives_the_same_distance_at_any_thread_count(ref, model):
    rgb = scenes(1, seed=50)[0]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = image_score(ref, model, rgb)
        torch.set_num_threads(2)
        two = image_score(ref, model, rgb)
    finally:
        torch.set_num_threads(threads)
    assert one == image_score(ref, model, rgb) or abs(one[0] - two[0]) < 1e-6
    assert abs(one[0] - two[0]) < 1e-6


def test_the_reference_is_small_json_and_round_trips_through_a_checkpoint(
    tmp_path, model_path, ref
):
    path = tmp_path / "m.safetensors"
    path.write_bytes(model_path.read_bytes())
    before = load_checkpoint(path)[0].state_dict()
    update_metadata(path, **{fam.KEY: ref})
    model, _, meta = load_checkpoint(path)
    assert meta[fam.KEY] == json.loads(json.dumps(ref))
    assert len(json.dumps(ref)) < 100_000
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    seg = load_model(path, device="cpu")
    rgb = foreign(1)[0]
    assert fam.image_familiarity(seg, rgb) == pytest.approx(image_score(ref, model, rgb))


def test_unusual_says_unfamiliar_imagery_and_points_at_the_remedy():
    photo, _ = make_scene(120, 160, seed=2)
    text = unusual(photo, 0.99, {}, (2.0, 1.4))
    assert "unlike what the model learnt" in text and "finetune" in text and "2.00" in text
    assert unusual(photo, 0.99, {}, (1.0, 1.4)) is None
    assert unusual(photo, 0.99, {}, None) is None  # no reference: as before
    assert "uniform" in unusual(np.zeros((50, 50, 3), np.uint8), 0.99, {}, (2.0, 1.4))


def test_merging_a_new_place_stops_its_warning(ref, model):
    new = foreign(3, seed=7)
    assert all(image_score(ref, model, rgb)[0] > image_score(ref, model, rgb)[1] for rgb in new)
    merged = fam.merge_reference(ref, model, new[:2])
    assert len(merged["centres"]) == 2 and len(ref["centres"]) == 1
    for rgb in [*new, *scenes(3)]:  # the place's other image too, and the old place still
        d, t = image_score(merged, model, rgb)
        assert d <= t


def test_segment_records_the_distance_and_warns(tmp_path, model_path, ref):
    path = tmp_path / "m.safetensors"
    path.write_bytes(model_path.read_bytes())
    update_metadata(path, **{fam.KEY: ref})
    seg = load_model(path, device="cpu")
    paths = output_paths(tmp_path, "stripes")
    segment_image_to_files(seg, foreign(1)[0], paths, "stripes.png")
    saved = json.loads(paths["stats_json"].read_text())
    assert saved["feature_distance"] > saved["feature_threshold"]
    assert "unlike what the model learnt" in saved["warning"]


def test_a_checkpoint_without_a_reference_records_no_distance(tmp_path, model_path):
    seg = load_model(model_path, device="cpu")
    assert fam.image_familiarity(seg, scenes(1)[0]) is None
    paths = output_paths(tmp_path, "scene")
    segment_image_to_files(seg, scenes(1)[0], paths, "scene.png")
    assert "feature_distance" not in json.loads(paths["stats_json"].read_text())


def test_the_window_grid_is_bounded_and_covers_the_image():
    grid = fam.window_grid(5000, 7000)
    assert 1 <= len(grid) <= fam.PER_IMAGE
    assert grid[0][:2] == (0, 0) and grid[-1][0] + grid[-1][2] == 5000
    assert fam.window_grid(100, 80) == [(0, 0, 100, 80)]


def test_the_geotiff_path_records_the_distance_and_warns(tmp_path, model_path, ref):
    pytest.importorskip("rasterio")
    from aerialseg.jobs.segment import segment_file

    from ..geo_helpers import write_raster

    path = tmp_path / "m.safetensors"
    path.write_bytes(model_path.read_bytes())
    update_metadata(path, **{fam.KEY: ref})
    seg = load_model(path, device="cpu")
    raster = write_raster(tmp_path / "in.tif", foreign(1)[0].transpose(2, 0, 1))
    info = segment_file(seg, raster, tmp_path / "o").stats
    assert info["feature_distance"] > info["feature_threshold"]
    assert "unlike what the model learnt" in info["warning"]
