"""The lower part of the window: the image and its segmentation side by side, the mask opacity
slider, the legend (each class's colour and share) and the information line under it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .worker import Result

HINT = "Capture (c) frames part of the screen; Open image… (o) reads a file."
REDRAW_DELAY_MS = 30  # a window resize or a slider drag sends many events: draw once after them


def fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of ``size`` scaled to fit inside ``box``, keeping its shape."""
    s = min(box[0] / size[0], box[1] / size[1])
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))


class Views:
    """Grid rows 1 to 4 of ``root`` (row 0 is the app's toolbar), and what they show."""

    def __init__(self, root):
        import tkinter as tk
        from tkinter import ttk

        self.root = root
        self.opacity = tk.DoubleVar(value=1.0)
        self.result: Result | None = None
        self._photos: list = []
        self._preview: tuple | None = None  # (size, photo, labels) downscaled to the canvas
        self._redraw_pending = False
        # Correct mode's hooks (correct_mode.py): paint the corrections into both previews,
        # and choose a class by clicking the legend
        self.decorate = None  # (labels_shape, size, photo, blend) -> (photo, blend)
        self.on_legend = None  # (class index) -> None
        self.swatches: list = []
        self.placed: tuple[int, int, float, float] | None = None  # left, top, x/y scales

        # direct children of the window: tkdnd 2.6 on X11 delivered no drops to a canvas nested
        # in a frame (tried under Xvfb)
        self.canvases = []
        for col, title in enumerate(("Image", "Segmentation")):
            ttk.Label(root, text=title, anchor="center").grid(row=1, column=col, sticky="ew")
            c = tk.Canvas(root, background="#2B2B2B", highlightthickness=0)
            c.grid(
                row=2, column=col, sticky="nsew", padx=(6 if col == 0 else 3, 3 if col == 0 else 6)
            )
            root.columnconfigure(col, weight=1, uniform="view")
            self.canvases.append(c)
        root.rowconfigure(2, weight=1)
        self.canvases[0].bind("<Configure>", lambda e: self.schedule_redraw())
        self.canvases[0].create_text(
            10,
            10,
            anchor="nw",
            fill="#DDDDDD",
            text=HINT,
            tags="hint",
        )

        foot = ttk.Frame(root, padding=(6, 2, 6, 6))
        foot.grid(row=3, column=0, columnspan=2, sticky="ew")
        ttk.Label(foot, text="Mask opacity").pack(side="left")
        ttk.Scale(
            foot,
            from_=0,
            to=1,
            variable=self.opacity,
            length=140,
            command=lambda v: self.schedule_redraw(),
        ).pack(side="left", padx=(4, 12))
        self.legend = ttk.Frame(foot)
        self.legend.pack(side="left", fill="x", expand=True)
        self.info = ttk.Label(root, text="", padding=(8, 0, 8, 6))
        self.info.grid(row=4, column=0, columnspan=2, sticky="ew")

    def set_hint(self, text: str) -> None:
        """The text shown in the empty image view, before the first result."""
        self.canvases[0].itemconfigure("hint", text=text)

    def show(self, r: Result) -> str:
        """Draw ``r`` with its legend and information line; returns that line."""
        import tkinter as tk
        from tkinter import ttk

        from ..io.outputs import class_stats

        self.result, self._preview = r, None
        self._redraw()
        for child in self.legend.winfo_children():
            child.destroy()
        self.swatches = []
        for i, row in enumerate(class_stats(r.labels, r.classes)):
            swatch = tk.Label(
                self.legend, background=r.classes.swatch(i), width=2, relief="solid", bd=2
            )
            swatch.pack(side="left", padx=(8, 2))
            share = "not learnt" if row["class"] in r.unlearnt else f"{row['percent']:.1f}%"
            text = ttk.Label(self.legend, text=f"{i + 1} {row['class']} {share}")
            text.pack(side="left")
            for w in (swatch, text):
                w.bind("<Button-1>", lambda e, i=i: self.on_legend and self.on_legend(i))
            self.swatches.append(swatch)
        h, w = r.labels.shape
        info = f"Model {r.model_name}{' with TTA' if r.tta else ''} · {w} × {h} px · "
        info += f"segmented in {r.seconds:.2f} s"
        if r.geo is not None:
            crs = r.geo.crs.to_string() if r.geo.crs else "no CRS"
            info += f" · georeferenced ({crs})"
            if r.geo.factor > 1:
                sw, sh = r.geo.source_size
                info += f", shown at 1/{r.geo.factor:.1f} of {sw} × {sh} px"
        self.info.configure(text=info)
        return info

    def schedule_redraw(self):
        if not self._redraw_pending:
            self._redraw_pending = True
            self.root.after(REDRAW_DELAY_MS, self._redraw)

    def to_image(self, x: float, y: float) -> tuple[float, float] | None:
        """Canvas coordinates to image pixels (floats), None before anything is shown."""
        if self.placed is None:
            return None
        left, top, sx, sy = self.placed
        return (x - left) / sx, (y - top) / sy

    def _redraw(self):
        """Both views at the canvas size; the downscaled photo and labels are kept, so the
        opacity slider only recomputes a screen-sized blend."""
        from PIL import ImageTk

        from ..io.outputs import overlay

        self._redraw_pending = False
        r = self.result
        if r is None:
            return
        c = self.canvases[0]
        box = (max(c.winfo_width(), 50), max(c.winfo_height(), 50))
        size = fit((r.rgb.shape[1], r.rgb.shape[0]), box)
        if self._preview is None or self._preview[0] != size:
            photo = np.array(Image.fromarray(r.rgb).resize(size, Image.Resampling.BILINEAR))
            labels = np.array(Image.fromarray(r.labels).resize(size, Image.Resampling.NEAREST))
            self._preview = (size, photo, labels)
        _, photo, labels = self._preview
        blend = overlay(photo, labels, r.classes, round(self.opacity.get(), 2))
        if self.decorate is not None:
            photo, blend = self.decorate(r.labels.shape, size, photo, blend)
        left, top = (box[0] - size[0]) // 2, (box[1] - size[1]) // 2
        self.placed = (left, top, size[0] / r.rgb.shape[1], size[1] / r.rgb.shape[0])
        self._photos = [ImageTk.PhotoImage(Image.fromarray(a)) for a in (photo, blend)]
        for canvas, image in zip(self.canvases, self._photos):
            canvas.delete("view", "hint")
            canvas.create_image(left, top, image=image, anchor="nw", tags="view")
            canvas.tag_lower("view")  # under the brush outline
