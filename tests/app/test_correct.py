"""The painting model behind Correct mode (app/correct.py): brush, erase, polygons,
undo/redo, and saving in the layout ``aerialseg finetune`` reads."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aerialseg.app.correct import Corrections, Painting, capsule, polygon_mask


def disc(shape, cx, cy, r):
    """Pixels whose centre is within r of (cx, cy): written out here, independently."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def test_a_click_paints_a_disc_of_the_class_and_nothing_else():
    p = Painting((40, 50), 6)
    p.line((20.3, 11.7), (20.3, 11.7), 6.0, 3)
    assert p.end()
    want = disc((40, 50), 20.3, 11.7, 6.0)
    assert np.array_equal(p.labels == 3, want)
    assert np.all(p.labels[~want] == 255)
    assert p.labelled == want.sum() == 113  # ~ pi * 6^2


def test_a_drag_leaves_no_gap_and_is_the_union_of_discs_along_it():
    p = Painting((60, 100), 6)
    p.line((5.0, 30.0), (95.0, 30.0), 4.0, 1)  # one fast segment, as a quick drag gives
    p.end()
    dense = np.zeros((60, 100), bool)
    for x in np.linspace(5, 95, 2000):
        dense |= disc((60, 100), x, 30.0, 4.0)
    assert np.array_equal(p.labels == 1, dense)
    # a diagonal segment near the border is clipped, not wrapped
    box, mask = capsule((60, 100), (-3.0, -3.0), (10.0, 8.0), 5.0)
    assert box[0].start == 0 and box[1].start == 0 and mask.any()


def test_erase_undo_redo():
    p = Painting((30, 30), 6)
    p.line((10, 10), (20, 10), 3, 2)
    p.end()
    first = p.labels.copy()
    p.line((15, 5), (15, 25), 2, None)  # the eraser crosses the first stroke
    p.end()
    assert (p.labels[10, 15], first[10, 15]) == (255, 2)
    assert (p.labels == 2).sum() < (first == 2).sum()
    erased = p.labels.copy()
    assert p.undo() and np.array_equal(p.labels, first)
    assert p.undo() and (p.labels == 255).all()
    assert not p.undo()
    assert p.redo() and np.array_equal(p.labels, first)
    assert p.redo() and np.array_equal(p.labels, erased)
    assert not p.redo()
    p.undo()
    p.line((0, 0), (1, 1), 1, 4)  # a new stroke after an undo drops the redo history
    p.end()
    assert not p.redo()


def test_a_stroke_is_one_undo_step_and_an_empty_one_none():
    p = Painting((30, 30), 6)
    for x in range(5, 25, 2):  # many motion events, one stroke
        p.line((x, 15), (x + 2, 15), 2, 0)
    assert p.end()
    p.line((15, 15), (15, 15), 2, 0)  # painting the same class again changes nothing
    assert not p.end()
    assert p.undo() and (p.labels == 255).all()


def test_polygon_fill_and_bad_class():
    p = Painting((20, 20), 6)
    p.polygon([(2, 2), (12, 2), (12, 8), (2, 8)], 5)
    assert np.array_equal(p.labels == 5, polygon_mask((20, 20), [(2, 2), (12, 2), (12, 8), (2, 8)]))
    assert (p.labels[2:9, 2:13] == 5).all() and p.labelled == 7 * 11
    with pytest.raises(ValueError):
        p.line((1, 1), (2, 2), 1, 6)  # 6 classes: 0-5


def test_saved_pngs_hold_the_image_and_exactly_the_painted_pixels(tmp_path):
    from aerialseg.classes import DUBAI
    from aerialseg.training.strokes import load_labelled

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    c = Corrections(6)
    e = c.entry_for(rgb, "/photos/site a.jpg", "site a")
    e.painting.line((10, 10), (40, 30), 5, 4)
    e.painting.end()
    other = c.entry_for(rgb[:32], "capture", "capture-1")
    other.painting.polygon([(1, 1), (20, 1), (20, 20)], 0)
    c.entry_for(rgb[:16], "unpainted", "unpainted")  # nothing painted: nothing saved
    assert c.entry_for(rgb.copy(), "/photos/site a.jpg", "x") is e  # same picture: same painting

    written = c.save(tmp_path)
    assert sorted(p.name for p in written) == ["capture-1.png", "site-a.png"]
    label = np.array(Image.open(tmp_path / "labels" / "site-a.png"))
    assert label.dtype == np.uint8 and label.ndim == 2
    assert np.array_equal(label, e.painting.labels)
    assert np.array_equal(np.array(Image.open(tmp_path / "images" / "site-a.png")), rgb)
    assert not c.unsaved()
    # what finetune reads back: the same labels, 255 unlabelled
    samples = load_labelled(tmp_path / "images", tmp_path / "labels", DUBAI)
    by_id = {s.id: s for s in samples}
    assert np.array_equal(by_id["site-a"].labels, e.painting.labels)
    assert np.array_equal(by_id["capture-1"].labels, other.painting.labels)

    # more strokes: saved again under the same names; another session's files are kept
    e.painting.line((50, 5), (50, 5), 3, 1)
    e.painting.end()
    assert c.unsaved() == [e]
    c.save(tmp_path)
    assert np.array_equal(
        np.array(Image.open(tmp_path / "labels" / "site-a.png")), e.painting.labels
    )
    later = Corrections(6)
    f = later.entry_for(rgb, "/photos/site a.jpg", "site a")
    f.painting.line((3, 3), (3, 3), 2, 2)
    f.painting.end()
    later.save(tmp_path)
    assert f.stem == "site-a-2"
    assert np.array_equal(
        np.array(Image.open(tmp_path / "labels" / "site-a.png")), e.painting.labels
    )
