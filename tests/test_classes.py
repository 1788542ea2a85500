import json

import numpy as np
import pytest
from PIL import Image

from aerialseg.classes import DUBAI, IGNORE_INDEX, ClassTable
from aerialseg.errors import AerialSegError
from aerialseg.io.images import read_mask


def test_dubai_table_uses_the_mask_colours_not_classes_json():
    assert DUBAI.names == ("Building", "Land", "Road", "Vegetation", "Water", "Unlabeled")
    assert DUBAI.colors[0] == (0x3C, 0x10, 0x98)
    assert DUBAI.colors[4] == (0xE2, 0xA9, 0x29)  # classes.json says #50E3C2 for Water
    assert DUBAI.land_cover == [0, 1, 2, 3, 4]


def test_encode_maps_colours_and_unknown_to_ignore():
    labels = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)
    rgb = DUBAI.colorize(labels)
    rgb[0, 0] = (0, 0, 0)  # black is no class: must not become Building (label 0)
    rgb[1, 2] = (1, 2, 3)
    out, unknown = DUBAI.encode(rgb)
    assert out.tolist() == [[IGNORE_INDEX, 1, 2], [3, 4, IGNORE_INDEX]]
    assert unknown == 2


def test_palette_mask_decodes_like_rgb(tmp_path):
    labels = np.array([[0, 1, 2, 3], [4, 5, 1, 0]], dtype=np.uint8)
    pal = Image.fromarray(labels, mode="P")
    pal.putpalette([v for c in DUBAI.colors for v in c])
    pal.save(tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode == "P"
    out, unknown = DUBAI.encode(read_mask(tmp_path / "m.png"))
    assert out.tolist() == labels.tolist() and unknown == 0


def test_ignore_colour_is_ignored_but_not_reported():
    t = ClassTable(("a", "b"), ((255, 0, 0), (0, 255, 0)), ignore_colors=((0, 0, 0),))
    rgb = np.array([[[0, 0, 0], [255, 0, 0], [9, 9, 9]]], dtype=np.uint8)
    out, unknown = t.encode(rgb)
    assert out.tolist() == [[IGNORE_INDEX, 0, IGNORE_INDEX]] and unknown == 1


def test_table_from_json_and_yaml(tmp_path):
    d = {
        "classes": [{"name": "water", "color": "#0000FF"}, {"name": "land", "color": "#00ff00"}],
        "ignore_color": "#000000",
    }
    (tmp_path / "t.json").write_text(json.dumps(d))
    (tmp_path / "t.yaml").write_text(
        "classes:\n  - {name: water, color: '#0000FF'}\n  - {name: land, color: '#00ff00'}\n"
        "ignore_color: '#000000'\n"
    )
    for f in ("t.json", "t.yaml"):
        t = ClassTable.from_file(tmp_path / f)
        assert t.names == ("water", "land") and t.colors[1] == (0, 255, 0)
        assert t.ignore_colors == ((0, 0, 0),)
        assert ClassTable.from_dict(t.to_dict()) == t


def test_duplicate_colours_are_refused(tmp_path):
    d = {"classes": [{"name": "a", "color": "#010203"}, {"name": "b", "color": "#010203"}]}
    (tmp_path / "dup.json").write_text(json.dumps(d))
    with pytest.raises(AerialSegError, match=r"dup.json: .*'a' and 'b' share colour #010203"):
        ClassTable.from_file(tmp_path / "dup.json")


def test_bad_colour_is_refused():
    with pytest.raises(AerialSegError, match="bad colour"):
        ClassTable.from_dict({"classes": [{"name": "a", "color": "red"}]})


def test_shipped_example_table_is_the_builtin_default():
    from pathlib import Path

    path = Path(__file__).parents[1] / "configs" / "dubai-classes.yaml"
    assert ClassTable.from_file(path) == DUBAI
