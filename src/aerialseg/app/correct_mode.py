"""The window's *Correct* mode: painting corrections on the shown image (the Tk side of
correct.py).

Keys: ``r`` Correct mode on/off; ``1``-``6`` (or a click on the legend) choose the class and
turn it on; ``e`` eraser; ``[`` / ``]`` or the mouse wheel brush size; Ctrl+Z undo, Ctrl+Y or
Ctrl+Shift+Z redo. Left drag paints, right drag erases, on either view; Shift+click adds a
polygon corner, Enter fills the polygon (Esc drops it). The brush size is in screen pixels, so
it feels the same at any zoom; the painting itself is at the image's full resolution. In
Correct mode the corrections are drawn filled in their display colours over both views; outside
it only their outlines, so the map under them (the model's answer) can be compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import IGNORE_INDEX
from .correct import Corrections, Entry

BRUSH_MIN, BRUSH_MAX, BRUSH_START = 2, 80, 10  # radius in screen pixels


def outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a 4-neighbour outside it (its 1-px border)."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


class CorrectMode:
    def __init__(self, app, row: int):
        import tkinter as tk
        from tkinter import ttk

        self.app, self.views, self.log = app, app.views, app.log
        self.active = tk.BooleanVar(value=False)
        self.erasing = tk.BooleanVar(value=False)
        self.brush = tk.IntVar(value=BRUSH_START)
        self.cls = 0
        self.corrections: Corrections | None = None
        self.entry: Entry | None = None
        self.last: tuple[float, float] | None = None  # image point of the open stroke
        self.corners: list[tuple[float, float]] = []  # the polygon being drawn

        bar = ttk.Frame(app.root, padding=(6, 0, 6, 6))
        bar.grid(row=row, column=0, columnspan=2, sticky="ew")
        ttk.Checkbutton(
            bar, text="Correct", underline=1, variable=self.active, command=self._toggled
        ).pack(side="left")
        self.chosen = ttk.Label(bar, text="", width=14)
        self.chosen.pack(side="left", padx=4)
        ttk.Label(bar, text="Brush").pack(side="left")
        ttk.Spinbox(bar, from_=BRUSH_MIN, to=BRUSH_MAX, width=3, textvariable=self.brush).pack(
            side="left", padx=(2, 6)
        )
        ttk.Checkbutton(bar, text="Erase", underline=0, variable=self.erasing).pack(side="left")
        ttk.Button(bar, text="Undo", width=5, command=self.undo).pack(side="left", padx=2)
        ttk.Button(bar, text="Redo", width=5, command=self.redo).pack(side="left")
        ttk.Label(
            bar,
            text="Drag: paint · right drag: erase · 1-6 or legend: class · [ ] or wheel: brush · "
            "Shift+click: corners, Enter: fill",
            foreground="#555555",
        ).pack(side="left", padx=10)

        self.views.decorate = self._decorate
        self.views.on_legend = self.choose
        root = app.root
        root.bind("<KeyPress-r>", lambda e: self._toggle())
        for i in range(9):
            root.bind(f"<KeyPress-{i + 1}>", lambda e, i=i: self.choose(i))
        root.bind("<KeyPress-e>", lambda e: self.erasing.set(not self.erasing.get()))
        root.bind("<KeyPress-bracketleft>", lambda e: self.resize(-2))
        root.bind("<KeyPress-bracketright>", lambda e: self.resize(2))
        root.bind("<Control-z>", lambda e: self.undo())
        root.bind("<Control-y>", lambda e: self.redo())
        root.bind("<Control-Z>", lambda e: self.redo())  # Ctrl+Shift+Z
        root.bind("<Return>", lambda e: self.fill_polygon())
        root.bind("<Escape>", lambda e: self._drop_polygon())
        for c in self.views.canvases:
            c.bind("<ButtonPress-1>", lambda e: self._press(e, erase=False))
            c.bind("<B1-Motion>", self._drag)
            c.bind("<ButtonRelease-1>", self._release)
            c.bind("<ButtonPress-3>", lambda e: self._press(e, erase=True))
            c.bind("<B3-Motion>", self._drag)
            c.bind("<ButtonRelease-3>", self._release)
            c.bind("<Shift-ButtonPress-1>", self._corner)
            c.bind("<Motion>", self._hover)
            c.bind("<Leave>", lambda e: self._clear_cursor())
            c.bind("<Button-4>", lambda e: self.resize(2))  # X11 wheel
            c.bind("<Button-5>", lambda e: self.resize(-2))
            c.bind("<MouseWheel>", lambda e: self.resize(2 if e.delta > 0 else -2))
        self._show_choice()

    # ------------------------------------------------------------------ state

    def attach(self, r) -> None:
        """A result is shown: its image's painting (kept if the image was shown before)."""
        from ..io.outputs import timestamped_stem

        if self.corrections is None:
            self.corrections = Corrections(len(r.classes))
        elif self.corrections.num_classes != len(r.classes):  # a model of another class table
            self.entry = None
            self.active.set(False)
            self.app.say(
                f"Correct: this model has {len(r.classes)} classes, the corrections so far "
                f"{self.corrections.num_classes}; switch back to correct more",
                warning=True,
            )
            return
        stem = timestamped_stem("capture") if r.source.startswith("screen") else Path(r.source).stem
        self.entry = self.corrections.entry_for(r.rgb, r.source, stem)
        self.classes, self.last, self.corners = r.classes, None, []
        self._show_choice()

    def summary(self) -> str:
        c = self.corrections
        if c is None or not c.labelled:
            return "no corrections"
        return f"{c.labelled:,} corrected pixels on {len(c.painted())} image(s)"

    def _toggle(self):
        self.active.set(not self.active.get())
        self._toggled()

    def _toggled(self):
        on = self.active.get()
        if on and self.entry is None:
            self.active.set(False)
            self.app.say("Correct: capture or open an image first", error=True)
            return
        for c in self.views.canvases:
            c.configure(cursor="none" if on else "")
        if not on:
            self._clear_cursor()
        c, placed = self.views.canvases[1], self.views.placed
        where = ""
        if on:  # where things are on the screen (the tests drive the mouse from it)
            swatches = ";".join(
                f"{w.winfo_rootx() + w.winfo_width() // 2},"
                f"{w.winfo_rooty() + w.winfo_height() // 2}"
                for w in self.views.swatches
            )
            where = (
                f" map_at={c.winfo_rootx()},{c.winfo_rooty()} placed={placed!r} legend={swatches}"
            )
        self.log(f"correct mode {'on' if on else 'off'}{where}")
        self.views.schedule_redraw()
        if on:
            self.app.say(
                "Correct: drag to paint, right-drag to erase; 1-6 or the legend choose the class"
            )

    def choose(self, i: int) -> None:
        n = len(self.classes) if self.entry else 0
        if not 0 <= i < n:
            return
        self.cls = i
        self.erasing.set(False)
        if not self.active.get():
            self._toggle()
        self._show_choice()
        self.log(f"class {i} {self.classes.names[i]}")

    def _show_choice(self):
        if self.entry is None:
            self.chosen.configure(text="")
            return
        self.chosen.configure(text=f"{self.cls + 1} {self.classes.names[self.cls]}")
        for i, s in enumerate(self.views.swatches):
            # the same border width either way: a legend changing height would move the views
            s.configure(relief="sunken" if i == self.cls else "solid")

    def resize(self, step: int) -> None:
        size = int(np.clip(self.brush_px() + step, BRUSH_MIN, BRUSH_MAX))
        self.brush.set(size)
        self.log(f"brush {size}")

    def brush_px(self) -> int:
        """The brush radius in screen pixels (the spin box may hold text being typed)."""
        import tkinter

        try:
            return int(np.clip(self.brush.get(), BRUSH_MIN, BRUSH_MAX))
        except (ValueError, tkinter.TclError):
            return BRUSH_START

    def _radius(self) -> float:
        """The brush radius in image pixels."""
        _, _, sx, sy = self.views.placed
        return self.brush_px() / ((sx + sy) / 2)

    # ------------------------------------------------------------------ painting

    def _ready(self) -> bool:
        return self.active.get() and self.entry is not None and self.views.placed is not None

    def _press(self, e, erase: bool):
        if not self._ready():
            return
        self.corners = []
        self.stroke_class = None if erase or self.erasing.get() else self.cls
        self.last = self.views.to_image(e.x, e.y)
        self.radius = self._radius()
        self._paint(self.last, self.last)

    def _drag(self, e):
        self._hover(e)
        if self.last is None or not self._ready():
            return
        p = self.views.to_image(e.x, e.y)
        self._paint(self.last, p)
        self.last = p

    def _paint(self, p0, p1):
        self.entry.painting.line(p0, p1, self.radius, self.stroke_class)
        self.log(f"paint value={self.stroke_class} radius={self.radius!r} from={p0!r} to={p1!r}")
        self.views.schedule_redraw()

    def _release(self, e):
        if self.last is None:
            return
        self.last = None
        if self.entry.painting.end():
            self.log(f"stroke done labelled={self.entry.painting.labelled}")
            self.app.say(f"Corrections: {self.summary()}")

    def _corner(self, e):
        if not self._ready():
            return
        self.corners.append(self.views.to_image(e.x, e.y))
        self.log(f"polygon corner {len(self.corners)}")
        self._draw_corners()

    def fill_polygon(self):
        if len(self.corners) < 3 or not self._ready():
            return
        value = None if self.erasing.get() else self.cls
        self.entry.painting.polygon(self.corners, value)
        self.log(f"polygon filled value={value} corners={self.corners!r}")
        self.corners = []
        self._draw_corners()
        self.views.schedule_redraw()
        self.app.say(f"Corrections: {self.summary()}")

    def _drop_polygon(self):
        self.corners = []
        self._draw_corners()

    def undo(self):
        if self.entry and self.entry.painting.undo():
            self.log(f"undo labelled={self.entry.painting.labelled}")
            self.views.schedule_redraw()

    def redo(self):
        if self.entry and self.entry.painting.redo():
            self.log(f"redo labelled={self.entry.painting.labelled}")
            self.views.schedule_redraw()

    # ------------------------------------------------------------------ drawing

    def _hover(self, e):
        if not self._ready():
            return
        r = self.brush_px()
        colour = "white" if self.erasing.get() else self.classes.swatch(self.cls)
        for c in self.views.canvases:
            c.delete("brush")
            c.create_oval(
                e.x - r, e.y - r, e.x + r, e.y + r, outline="black", width=3, tags="brush"
            )
            c.create_oval(e.x - r, e.y - r, e.x + r, e.y + r, outline=colour, width=1, tags="brush")

    def _clear_cursor(self):
        for c in self.views.canvases:
            c.delete("brush")

    def _draw_corners(self):
        left, top, sx, sy = self.views.placed or (0, 0, 1, 1)
        flat = [v for x, y in self.corners for v in (left + x * sx, top + y * sy)]
        for c in self.views.canvases:
            c.delete("corners")
            if len(flat) >= 4:
                c.create_line(*flat, flat[0], flat[1], fill="yellow", dash=(4, 3), tags="corners")

    def _decorate(self, shape, size, photo, blend):
        """The corrections over both previews (see the module docstring)."""
        e = self.entry
        if e is None or e.rgb.shape[:2] != tuple(shape) or not e.painting.labelled:
            return photo, blend
        small = np.array(Image.fromarray(e.painting.labels).resize(size, Image.Resampling.NEAREST))
        mask = small != IGNORE_INDEX
        edge = outline(mask)
        colours = self.classes.paint(np.where(mask, small, 0))
        photo, blend = photo.copy(), blend.copy()
        if self.active.get():
            blend[mask] = colours[mask]
            photo[mask] = (0.4 * photo[mask] + 0.6 * colours[mask]).astype(np.uint8)
        photo[edge] = blend[edge] = 255
        return photo, blend
