"""The capture overlay, driven under Xvfb: what is framed is exactly what is segmented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from aerialseg.classes import DUBAI


def test_drag_captures_exactly_the_framed_pixels_and_saves_them(
    screen, known_image, tiny_model, tmp_path
):
    from aerialseg.inference.segmenter import load_segmenter

    photo, path = known_image
    screen.show_image(path, 700, 400)  # partly under the app window: the app must get away
    out = tmp_path / "saved"
    screen.start_app("--model", tiny_model, "--autosave", out)
    screen.wait_for("ready model=")

    screen.key_over_app("c")
    screen.wait_for("overlay shown 1400x900")
    screen.drag(900, 600, 893, 592)  # a click-like drag is ignored, the overlay stays
    screen.wait_for("ignored a 7x8 drag")
    screen.drag(700 + 350, 400 + 250, 700 + 50, 400 + 30)  # bottom right to top left
    screen.wait_for("released 300x220 at (750, 430)")
    screen.wait_for("result shown 300x220")
    _, saved = screen.wait_for("saved ")

    stem = Path(saved.removeprefix("saved "))
    framed = photo[30:250, 50:350]
    got = np.array(Image.open(f"{stem}_input.png"))
    assert np.array_equal(got, framed)
    labels = np.array(Image.open(f"{stem}_labels.png"))
    assert np.array_equal(labels, load_segmenter(tiny_model).segment(framed))
    assert np.array_equal(np.array(Image.open(f"{stem}_mask.png")), DUBAI.colorize(labels))
    info = json.loads(Path(f"{stem}_stats.json").read_text())
    assert info["model"] == "tiny" and info["source"] == "screen 300x220 at (750, 430)"
    assert Path(f"{stem}_overlay.jpg").stat().st_size > 0
