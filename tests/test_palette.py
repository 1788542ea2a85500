"""Display colours (how maps show a class) beside mask colours (how masks are read)."""

import numpy as np
import pytest

from aerialseg.classes import DUBAI, ClassTable, parse_display
from aerialseg.errors import AerialSegError

LABELS = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)


def test_dubai_reads_in_mask_colours_and_shows_a_land_cover_palette():
    shown = dict(zip(DUBAI.names, DUBAI.display))
    r, g, b, a = shown["Water"]
    assert b > r and b > g and a == 255  # blue, not the masks' orange
    r, g, b, _ = shown["Vegetation"]
    assert g > r and g > b  # green, not the masks' yellow
    r, g, b, _ = shown["Building"]
    assert r > g and r > b  # red, not the masks' purple
    assert len(set(shown["Road"][:3])) == 1  # grey
    assert shown["Unlabeled"][3] == 0  # transparent
    assert DUBAI.colorize(LABELS)[1, 1].tolist() == [0xE2, 0xA9, 0x29]  # masks: as read
    assert DUBAI.paint(LABELS)[1, 1].tolist() == list(shown["Water"][:3])  # maps: as shown


def test_a_transparent_class_and_nodata_show_what_is_under_them():
    photo = np.full((2, 3, 3), 77, np.uint8)
    labels = LABELS.copy()
    labels[0, 0] = 255  # no data
    painted = DUBAI.paint(labels, photo)
    assert (painted[0, 0] == 77).all() and (painted[1, 2] == 77).all()
    assert (DUBAI.paint(labels)[1, 2] == 255).all()  # over white, without a photo
    assert DUBAI.swatch(5) == "#FFFFFF" and DUBAI.swatch(4) == "#1F78B4"


def test_a_table_overrides_the_display_colours(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "classes:\n"
        "  - {name: Water, color: '#E2A929', display: '#0000FF'}\n"
        "  - {name: Land, color: '#8429F6', display: '#AA885580'}\n"
        "  - {name: Unlabeled, color: '#9B9B9B', display: transparent}\n"
    )
    t = ClassTable.from_file(tmp_path / "t.yaml")
    assert t.display == ((0, 0, 255, 255), (0xAA, 0x88, 0x55, 0x80), (0, 0, 0, 0))
    assert t.colors[0] == (0xE2, 0xA9, 0x29)  # read colours untouched
    assert ClassTable.from_dict(t.to_dict()) == t
    assert [e["display"] for e in t.to_dict()["classes"]] == [
        "#0000FF",
        "#AA885580",
        "transparent",
    ]


def test_a_table_gives_display_colours_for_some_classes_only():
    t = ClassTable.from_dict(
        {
            "classes": [
                {"name": "a", "color": "#010203", "display": "#FF0000"},
                {"name": "b", "color": "#040506"},
            ]
        }
    )
    assert t.display == ((255, 0, 0, 255), (4, 5, 6, 255))  # b: its mask colour


def test_without_display_colours_dubai_names_get_the_palette_others_their_mask_colours():
    colours = [f"#0{i}0{i}0{i}" for i in range(1, 7)]
    old = {"classes": [{"name": n.lower(), "color": c} for n, c in zip(DUBAI.names, colours)]}
    assert ClassTable.from_dict(old).display == DUBAI.display  # any case, any mask colours
    own = {"classes": [{"name": "Tree", "color": "#006400"}, {"name": "Water", "color": "#0000FE"}]}
    assert ClassTable.from_dict(own).display == ((0, 100, 0, 255), (0, 0, 254, 255))


def test_an_old_checkpoint_without_display_colours_loads_with_the_palette(tmp_path, monkeypatch):
    from aerialseg.models import create_model
    from aerialseg.models.checkpoint import load_checkpoint, save_checkpoint

    def old_to_dict(self):  # what checkpoints held before display colours
        return {"classes": [{"name": n, "color": "#{:02X}{:02X}{:02X}".format(*c)}
                            for n, c in zip(self.names, self.colors)],
                "background": list(self.background)}  # fmt: skip

    with monkeypatch.context() as m:
        m.setattr(ClassTable, "to_dict", old_to_dict)
        path = save_checkpoint(
            tmp_path / "old.safetensors", create_model("unet", base_filters=4), DUBAI
        )
    _, classes, meta = load_checkpoint(path)
    assert "display" not in meta["classes"]["classes"][0]
    assert classes == DUBAI and classes.display[4] == (0x1F, 0x78, 0xB4, 255)


@pytest.mark.parametrize("bad", ["blue", "#12345", "#1234567G", "#GG0000"])
def test_a_bad_display_colour_is_one_line(bad):
    with pytest.raises(AerialSegError, match="bad colour") as e:
        ClassTable.from_dict({"classes": [{"name": "a", "color": "#010203", "display": bad}]})
    assert "\n" not in str(e.value)
    assert parse_display("#01020304") == (1, 2, 3, 4)
