"""Screen capture without a window: rectangles, screen-to-screenshot mapping, grabbing.

The app grabs the whole virtual screen once, as soon as its own window is out of the way, and
crops the rectangle the user framed from that grab. What is saved is therefore exactly what
was under the rectangle, whatever the overlay looked like and however slowly it went away.

Coordinates: the overlay reports positions in the toolkit's units, which on a HiDPI screen
(macOS Retina, Windows without DPI awareness) are not the screenshot's pixels. Rather than
trusting platform scaling APIs, we map by the ratio of the screenshot's size to the size of
the screen in toolkit units: both describe the same area, so the ratio *is* the scale."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import AerialSegError

MIN_DRAG = 16  # a smaller rectangle is almost always a click, not a choice


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), as Pillow's crop wants."""
        return self.x, self.y, self.x + self.w, self.y + self.h

    def __str__(self) -> str:
        return f"{self.w}x{self.h} at ({self.x}, {self.y})"


def normalize(x0: float, y0: float, x1: float, y1: float) -> Rect:
    """The rectangle between a press and a release point, dragged in any direction."""
    left, top = min(x0, x1), min(y0, y1)
    return Rect(round(left), round(top), round(max(x0, x1) - left), round(max(y0, y1) - top))


def too_small(r: Rect) -> bool:
    return r.w < MIN_DRAG or r.h < MIN_DRAG


def parse_region(text: str) -> Rect:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise AerialSegError(
            f"--region must be X,Y,W,H in pixels, e.g. 0,0,1024,768; got {text!r}"
        ) from None
    if w < 1 or h < 1:
        raise AerialSegError(f"--region width and height must be positive, got {w}x{h}")
    return Rect(x, y, w, h)


def to_image(r: Rect, screen_w: int, screen_h: int, image_size: tuple[int, int]) -> Rect:
    """A rectangle in screen units (relative to the virtual screen's top left) -> screenshot
    pixels, clipped to the screenshot."""
    sx, sy = image_size[0] / screen_w, image_size[1] / screen_h
    left, top = max(0, round(r.x * sx)), max(0, round(r.y * sy))
    right = min(image_size[0], round((r.x + r.w) * sx))
    bottom = min(image_size[1], round((r.y + r.h) * sy))
    return Rect(left, top, max(0, right - left), max(0, bottom - top))


def make_dpi_aware() -> None:
    """On Windows, ask for real pixels: otherwise a scaled display gives the app (and its
    overlay) virtual coordinates that are a blurred fraction of the screenshot's."""
    if sys.platform == "win32":
        import ctypes

        try:
            ctypes.windll.shcore.SetProcessDpiAwareness(2)
        except (AttributeError, OSError):
            ctypes.windll.user32.SetProcessDPIAware()


def virtual_origin() -> tuple[int, int]:
    """Top left of the virtual screen (all monitors) in desktop pixels. Windows puts monitors
    left of or above the primary one at negative coordinates; an X11 root window spans all
    monitors from (0, 0); macOS captures the main display."""
    if sys.platform == "win32":
        import ctypes

        metrics = ctypes.windll.user32.GetSystemMetrics
        return metrics(76), metrics(77)  # SM_XVIRTUALSCREEN, SM_YVIRTUALSCREEN
    return 0, 0


def grab_screen() -> Image.Image:
    """A screenshot of the whole virtual screen, or an AerialSegError saying why not."""
    from PIL import ImageGrab

    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        if os.environ.get("WAYLAND_DISPLAY"):
            raise AerialSegError(
                "cannot take a screenshot: this is a Wayland session without X11 "
                "(run under XWayland with DISPLAY set, or use Open image…)"
            )
        raise AerialSegError("cannot take a screenshot: no display (DISPLAY is not set)")
    if sys.platform == "darwin" and not _mac_may_capture():
        raise AerialSegError(
            "cannot take a screenshot: allow screen recording for this terminal or Python in "
            "System Settings > Privacy & Security > Screen Recording, then restart it"
        )
    try:
        im = ImageGrab.grab(all_screens=sys.platform == "win32")
    except (OSError, subprocess.CalledProcessError) as e:
        hint = ""
        if os.environ.get("WAYLAND_DISPLAY"):
            hint = " (Wayland allows screenshots only through a desktop portal; use Open image…)"
        raise AerialSegError(f"cannot take a screenshot: {e}{hint}") from None
    return im.convert("RGB")


def _mac_may_capture() -> bool:
    """Without the screen-recording permission macOS does not fail: it silently returns the
    wallpaper. CGPreflightScreenCaptureAccess (macOS 10.15+) tells us beforehand."""
    import ctypes
    import ctypes.util

    try:
        cg = ctypes.cdll.LoadLibrary(ctypes.util.find_library("CoreGraphics"))
        cg.CGPreflightScreenCaptureAccess.restype = ctypes.c_bool
        return bool(cg.CGPreflightScreenCaptureAccess())
    except (OSError, AttributeError, TypeError):
        return True  # older macOS: no such check, and no such permission


def capture_region(region: Rect) -> np.ndarray:
    """The pixels of ``region`` (desktop pixels) as (H, W, 3) uint8, for ``aerialseg capture``."""
    shot = grab_screen()
    ox, oy = virtual_origin()
    inside = Rect(region.x - ox, region.y - oy, region.w, region.h)
    sw, sh = shot.size
    if inside.x < 0 or inside.y < 0 or inside.x + inside.w > sw or inside.y + inside.h > sh:
        raise AerialSegError(
            f"region {region} is not inside the screen ({sw}x{sh} at ({ox}, {oy}))"
        )
    return np.array(shot.crop(inside.box))
