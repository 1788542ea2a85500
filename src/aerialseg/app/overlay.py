"""The full-screen overlay on which the user drags the rectangle to capture.

It is not a live translucent window: the screen is grabbed the moment the app has hidden
itself and the overlay shows that grab, dimmed. It looks like a translucent overlay (without
needing a compositor, which X11 often lacks), and what is cropped is by construction exactly
what the user saw inside the rectangle. Tkinter is imported only when an overlay is made.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from PIL import Image

from .capture import Rect, normalize, to_image, too_small

_CROSS = (("white", ()), ("black", (4, 4)))  # a dashed pair: visible on light and dark screens


def screen_area(root) -> Rect:
    """The virtual screen (all monitors) in Tk's units, where the overlay must go."""
    if sys.platform == "win32":
        import ctypes

        m = ctypes.windll.user32.GetSystemMetrics
        return Rect(m(76), m(77), m(78), m(79))
    return Rect(0, 0, root.winfo_screenwidth(), root.winfo_screenheight())


class Overlay:
    """Full-screen selection over a screenshot. Calls ``done(rgb, rect, release_time)`` with
    the framed pixels, or ``cancel()``."""

    def __init__(self, root, shot: Image.Image, area: Rect, done, cancel, log):
        import tkinter as tk

        from PIL import ImageTk

        self.shot, self.area, self.done, self.cancel, self.log = shot, area, done, cancel, log
        self.top = top = tk.Toplevel(root)
        top.overrideredirect(True)
        top.geometry(f"{area.w}x{area.h}{area.x:+d}{area.y:+d}")
        top.attributes("-topmost", True)
        self.canvas = c = tk.Canvas(
            top, width=area.w, height=area.h, highlightthickness=0, cursor="crosshair", bd=0
        )
        c.pack()
        shown = shot.resize((area.w, area.h)) if shot.size != (area.w, area.h) else shot
        self.photo = ImageTk.PhotoImage(Image.eval(shown, lambda v: v * 55 // 100))
        c.create_image(0, 0, image=self.photo, anchor="nw")
        self.hlines = [c.create_line(0, 0, 0, 0, fill=f, dash=d) for f, d in _CROSS]
        self.vlines = [c.create_line(0, 0, 0, 0, fill=f, dash=d) for f, d in _CROSS]
        self.box = c.create_rectangle(0, 0, 0, 0, outline="#FFD400", width=2)
        self.label = c.create_text(0, 0, fill="white", anchor="sw", font=("TkDefaultFont", 11))
        self.hint = c.create_text(
            area.w // 2,
            40,
            fill="white",
            font=("TkDefaultFont", 14),
            text="Drag a rectangle to segment it — Esc or right-click cancels",
        )
        self.start: tuple[int, int] | None = None
        c.bind("<Motion>", self._move)
        c.bind("<ButtonPress-1>", self._press)
        c.bind("<B1-Motion>", self._drag)
        c.bind("<ButtonRelease-1>", self._release)
        c.bind("<ButtonPress-3>", self._cancel)
        top.bind("<Escape>", self._cancel)
        top.update_idletasks()
        top.focus_force()
        log(f"overlay shown {area.w}x{area.h} over a {shot.width}x{shot.height} screenshot")

    def _move(self, e):
        for line in self.hlines:
            self.canvas.coords(line, 0, e.y, self.area.w, e.y)
        for line in self.vlines:
            self.canvas.coords(line, e.x, 0, e.x, self.area.h)

    def _press(self, e):
        self.start = (e.x, e.y)

    def _drag(self, e):
        self._move(e)
        if self.start:
            r = normalize(*self.start, e.x, e.y)
            self.canvas.coords(self.box, *r.box)
            self.canvas.coords(self.label, r.x, r.y - 4)
            self.canvas.itemconfigure(self.label, text=f"{r.w} × {r.h}")

    def _release(self, e):
        released = time.monotonic()
        if not self.start:
            return
        r = normalize(*self.start, e.x, e.y)
        self.start = None
        if too_small(r):
            self.canvas.coords(self.box, 0, 0, 0, 0)
            self.canvas.itemconfigure(self.label, text="")
            self.canvas.itemconfigure(
                self.hint, text="Too small: drag at least 16 × 16 px — Esc or right-click cancels"
            )
            self.log(f"ignored a {r.w}x{r.h} drag")
            return
        px = to_image(r, self.area.w, self.area.h, self.shot.size)
        rgb = np.array(self.shot.crop(px.box))
        self.log(f"released {r} -> screenshot pixels {px}")
        self.top.destroy()
        self.done(rgb, Rect(r.x + self.area.x, r.y + self.area.y, r.w, r.h), released)

    def _cancel(self, e=None):
        self.top.destroy()
        self.log("capture cancelled")
        self.cancel()
