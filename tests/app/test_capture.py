"""Rectangles and screen-to-screenshot mapping, and ``aerialseg capture`` on a real X screen."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aerialseg.app.capture import MIN_DRAG, Rect, normalize, parse_region, to_image, too_small
from aerialseg.errors import AerialSegError

from ..helpers import run_aerialseg


@pytest.mark.parametrize(
    "press, release",
    [((10, 20), (110, 70)), ((110, 70), (10, 20)), ((110, 20), (10, 70)), ((10, 70), (110, 20))],
)
def test_a_drag_in_any_direction_gives_the_same_rectangle(press, release):
    assert normalize(*press, *release) == Rect(10, 20, 100, 50)


def test_tiny_drags_are_too_small():
    assert too_small(Rect(0, 0, MIN_DRAG - 1, 500))
    assert too_small(Rect(0, 0, 500, 3))
    assert not too_small(Rect(0, 0, MIN_DRAG, MIN_DRAG))


def test_parse_region():
    assert parse_region("-1920,0,800,600") == Rect(-1920, 0, 800, 600)
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,10", "0,0,10,-5"):
        with pytest.raises(AerialSegError, match="region"):
            parse_region(bad)


def test_screen_units_map_to_screenshot_pixels_on_hidpi():
    # a Retina-like screen: 1440x900 points, 2880x1800 pixels in the screenshot
    assert to_image(Rect(100, 50, 300, 200), 1440, 900, (2880, 1800)) == Rect(200, 100, 600, 400)
    assert to_image(Rect(100, 50, 300, 200), 1440, 900, (1440, 900)) == Rect(100, 50, 300, 200)
    # a rectangle dragged past the screen edge is clipped, not padded
    assert to_image(Rect(1400, 880, 100, 100), 1440, 900, (2880, 1800)) == Rect(2800, 1760, 80, 40)


def test_capture_command_grabs_the_region(screen, known_image, tiny_model, tmp_path):
    from aerialseg.inference.segmenter import load_segmenter

    photo, path = known_image
    screen.show_image(path, 100, 50)
    out = tmp_path / "out"
    r = run_aerialseg(
        "capture", "--region", "120,60,200,150", "--out", out, "--model", tiny_model,
        env=screen.env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "captured 200x150 at (120, 60)" in r.stdout
    (inp,) = out.glob("capture-*_input.png")
    framed = photo[10:160, 20:220]
    assert np.array_equal(np.array(Image.open(inp)), framed)
    labels = np.array(Image.open(str(inp).replace("_input", "_labels")))
    assert np.array_equal(labels, load_segmenter(tiny_model).segment(framed))

    r = run_aerialseg(
        "capture", "--region", "1300,800,200,200", "--out", out, "--model", tiny_model,
        env=screen.env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "not inside the screen (1400x900" in r.stderr
