"""Fixtures of the app's tests: a private X screen (Xvfb + xdotool) and a known image to show
on it. Tests that take ``screen`` skip when Xvfb, xdotool or tkinter are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aerialseg.app.virtual_screen import VirtualScreen, missing_tools

from ..helpers import make_scene


@pytest.fixture
def screen():
    """A 1400 x 900 Xvfb screen of this test's own; DISPLAY is set only for what it starts."""
    why = missing_tools()
    if why:
        pytest.skip(why)
    s = VirtualScreen(1400, 900)
    yield s
    s.close()


@pytest.fixture
def known_image(tmp_path) -> tuple[np.ndarray, Path]:
    photo, _ = make_scene(300, 400, seed=7)
    path = tmp_path / "known.png"
    Image.fromarray(photo).save(path)
    return photo, path
