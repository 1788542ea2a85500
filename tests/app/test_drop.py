"""A real XDND drag and drop onto the window under Xvfb (skipped without tkdnd)."""

from __future__ import annotations

import pytest
from PIL import Image

from ..helpers import make_scene


def test_a_file_dropped_on_the_window_is_segmented(screen, tmp_path, tiny_model):
    photo, _ = make_scene(120, 160, seed=5)
    path = tmp_path / "dropped image.png"  # a space, as file names often have
    Image.fromarray(photo).save(path)
    if not screen.drag_source(path, 1250, 100):
        pytest.skip("the tkdnd Tcl extension is not installed (apt install tkdnd)")
    screen.start_app("--model", tiny_model)
    screen.wait_for("ready model=")
    # XDND needs a few pointer moves over the target to negotiate before the release
    screen.xdotool(
        "mousemove", 1300, 150, "mousedown", 1, "mousemove", 1250, 150, "sleep", 0.1,
        "mousemove", 600, 300, "sleep", 0.1, "mousemove", 400, 300, "sleep", 0.2, "mouseup", 1,
    )  # fmt: skip
    screen.wait_for(f"dropped {path}", timeout=10)
    screen.wait_for("result shown 160x120")
