import json

import numpy as np
import pytest
from PIL import Image

from aerialseg.classes import DUBAI
from aerialseg.errors import AerialSegError
from aerialseg.io.outputs import (
    class_stats,
    output_paths,
    overlay,
    write_outputs,
)

from ..helpers import make_scene


def test_class_stats_with_ground_sampling_distance():
    labels = np.array([[0, 0, 1, 4]], dtype=np.uint8)
    rows = class_stats(labels, DUBAI, gsd=0.5)
    assert [r["pixels"] for r in rows] == [2, 1, 0, 0, 1, 0]
    assert rows[0]["percent"] == 50 and rows[0]["area_m2"] == 0.5
    assert "area_m2" not in class_stats(labels, DUBAI)[0]


def test_overlay_opacity():
    rgb = np.full((1, 2, 3), 100, np.uint8)
    labels = np.array([[1, 1]], np.uint8)
    assert (overlay(rgb, labels, DUBAI, 0.0) == rgb).all()
    assert (overlay(rgb, labels, DUBAI, 1.0) == DUBAI.display[1][:3]).all()  # as shown
    unlabeled = np.array([[5, 255]], np.uint8)  # transparent class, no data: the photo
    assert (overlay(rgb, unlabeled, DUBAI, 1.0) == rgb).all()


def test_the_mask_reads_back_as_the_labels_and_the_figure_shows_the_display_palette(tmp_path):
    from aerialseg.io.images import read_mask

    rgb, labels = make_scene(60, 80, seed=3)
    labels[:30, :40] = 4  # a big Water patch
    paths = output_paths(tmp_path, "x")
    info = write_outputs(paths, rgb, labels, DUBAI, "x.jpg")
    back, unknown = DUBAI.encode(read_mask(paths["mask"]))
    assert np.array_equal(back, labels) and unknown == 0  # mask colours: a round trip
    figure = np.array(Image.open(paths["figure"]).convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(figure, axis=0)}
    assert DUBAI.display[4][:3] in colours  # water blue
    assert DUBAI.colors[4] not in colours  # not the masks' orange
    water = next(r for r in info["classes"] if r["class"] == "Water")
    assert water["color"] == "#1F78B4"
    assert info["classes"][-1]["color"] == "transparent"


def test_every_output_is_written_and_readable(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, (37, 53)).astype(np.uint8)
    paths = output_paths(tmp_path / "out", "Tile 1/x")
    info = write_outputs(paths, rgb, labels, DUBAI, "x.jpg", gsd=2.0)
    assert np.array_equal(np.array(Image.open(paths["labels"])), labels)
    assert np.array_equal(np.array(Image.open(paths["mask"])), DUBAI.colorize(labels))
    assert Image.open(paths["overlay"]).size == (53, 37)
    assert Image.open(paths["figure"]).size[0] > 500
    stats = json.loads(paths["stats_json"].read_text())
    assert stats == json.loads(json.dumps(info))
    assert sum(c["pixels"] for c in stats["classes"]) == 37 * 53
    csv_lines = paths["stats_csv"].read_text().splitlines()
    assert csv_lines[0] == "class,color,pixels,percent,area_m2" and len(csv_lines) == 7
    assert not [p for p in (tmp_path / "out/Tile 1").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("opacity", [-0.1, 1.5])
def test_bad_opacity(opacity):

    with pytest.raises(AerialSegError, match="opacity"):
        overlay(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.uint8), DUBAI, opacity)
