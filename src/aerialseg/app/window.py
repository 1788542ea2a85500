"""The desktop app: frame part of the screen (or open an image), see it segmented, save it.

Tk must only be touched from the thread running its main loop, so everything slow (loading the
model, segmenting, saving) runs on one worker thread and hands its result back through a queue
that the main loop polls. The window therefore never freezes, and the worker's single slot is
also what refuses a second capture while one is still being segmented.

The capture overlay is not a live translucent window: the screen is grabbed the moment the app
has hidden itself and the overlay shows that grab, dimmed. It looks like a translucent overlay
(without needing a compositor, which X11 often lacks), and what is cropped is by construction
exactly what the user saw inside the rectangle.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import ClassTable
from ..errors import AerialSegError
from ..inference.outputs import save_result, timestamped_stem
from .capture import Rect, grab_screen, make_dpi_aware, normalize, to_image, too_small

GRAB_DELAY_MS = 200  # time for the window manager to unmap us and repaint what was beneath
POLL_MS = 20
HINT = "Capture (c) frames part of the screen; Open image… (o) reads a file."
IMAGE_TYPES = [("Images", "*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp"), ("All files", "*")]


def log_to_stdout(verbose: bool) -> Callable[[str], None]:
    """Timestamps are time.monotonic(), which on one machine is shared by all processes: the
    latency benchmark compares them with its own clock."""

    def log(msg: str) -> None:
        if verbose:
            print(f"{time.monotonic():.4f} {msg}", flush=True)

    return log


class Worker:
    """One background thread running one job at a time; Tk-side code submits and polls."""

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self.busy_with: str | None = None  # read and written on the Tk thread only
        self.started = 0.0
        threading.Thread(target=self._run, daemon=True, name="aerialseg-worker").start()

    def submit(self, what: str, job: Callable, on_done: Callable, on_error: Callable) -> bool:
        """Start ``job()`` unless a job is running; False (and nothing started) if one is."""
        if self.busy_with:
            return False
        self.busy_with, self.started = what, time.monotonic()
        self._jobs.put((job, on_done, on_error))
        return True

    def poll(self) -> None:
        """Call the finished job's callback, on the calling (Tk) thread."""
        try:
            callback, value = self._done.get_nowait()
        except queue.Empty:
            return
        self.busy_with = None
        callback(value)

    def _run(self) -> None:
        while True:
            job, on_done, on_error = self._jobs.get()
            try:
                self._done.put((on_done, job()))
            except AerialSegError as e:
                self._done.put((on_error, str(e)))
            except Exception as e:  # a bug or a broken file: say so in the window, keep going
                self._done.put((on_error, f"{type(e).__name__}: {e}"))


@dataclass
class Result:
    rgb: np.ndarray
    labels: np.ndarray
    source: str
    classes: ClassTable
    model_name: str
    seconds: float
    tta: bool


def fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of ``size`` scaled to fit inside ``box``, keeping its shape."""
    s = min(box[0] / size[0], box[1] / size[1])
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))


def screen_area(root) -> Rect:
    """The virtual screen (all monitors) in Tk's units, where the overlay must go."""
    if sys.platform == "win32":
        import ctypes

        m = ctypes.windll.user32.GetSystemMetrics
        return Rect(m(76), m(77), m(78), m(79))
    return Rect(0, 0, root.winfo_screenwidth(), root.winfo_screenheight())


def enable_file_drop(widgets, on_file: Callable[[str], None]) -> bool:
    """Accept files dropped from a file manager, where the tkdnd Tcl extension is installed
    (Debian/Ubuntu: apt install tkdnd). The standard library has no drag and drop of its own.
    tkdnd delivers a drop to the widget under the pointer, not to its parents, so every
    widget that should take drops is registered."""
    import tkinter as tk

    tcl = widgets[0].tk
    try:
        tcl.call("package", "require", "tkdnd")
    except tk.TclError:
        return False

    def dropped(data: str) -> str:
        # tkdnd hands over a Tcl list of paths, except that a single path with spaces can
        # arrive unquoted: try the whole string as one path first
        paths = [data] if Path(data).exists() else tcl.splitlist(data)
        if paths:
            on_file(paths[0])
        return "copy"

    command = widgets[0].register(dropped)
    for w in widgets:
        tcl.call("tkdnd::drop_target", "register", w._w, "DND_Files")
        tcl.call("bind", w._w, "<<Drop:DND_Files>>", f"{command} %D")
    return True


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


_CROSS = (("white", ()), ("black", (4, 4)))  # a dashed pair: visible on light and dark screens


class App:
    def __init__(self, root, model_path, tta, save_dir, autosave, log):
        import tkinter as tk

        self.root, self.log = root, log
        self.model_path, self.save_dir, self.autosave = model_path, save_dir, autosave
        self.worker = Worker()
        self.seg = None
        self.result: Result | None = None
        self.pending_image: str | None = None
        self.tta = tk.BooleanVar(value=tta)
        self.opacity = tk.DoubleVar(value=1.0)
        self._photos: list = []
        self._preview: tuple | None = None
        self.closing = False
        self._build()
        root.report_callback_exception = self._bug
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.after(POLL_MS, self._poll)
        self.load_model(model_path)

    # ------------------------------------------------------------------ layout

    def _build(self):
        import tkinter as tk
        from tkinter import ttk

        root = self.root
        root.title("aerialseg")
        root.geometry("1180x720")
        root.minsize(640, 420)
        bar = ttk.Frame(root, padding=(6, 6, 6, 2))
        bar.grid(row=0, column=0, columnspan=2, sticky="ew")
        self.buttons = {
            "capture": ttk.Button(bar, text="Capture", underline=0, command=self.capture),
            "open": ttk.Button(bar, text="Open image…", underline=0, command=self.open_dialog),
            "save": ttk.Button(bar, text="Save…", underline=0, command=self.save),
            "model": ttk.Button(bar, text="Model…", underline=0, command=self.model_dialog),
        }
        for b in self.buttons.values():
            b.pack(side="left", padx=2)
        ttk.Checkbutton(bar, text="TTA (8× slower, smoother)", variable=self.tta).pack(
            side="left", padx=8
        )
        self.busy = ttk.Progressbar(bar, mode="determinate", length=120)
        self.busy.pack(side="right", padx=4)
        self.status = ttk.Label(bar, text="", anchor="e")
        self.status.pack(side="right", fill="x", expand=True, padx=6)

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
        self.canvases[0].bind("<Configure>", lambda e: self._schedule_redraw())
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
            command=lambda v: self._schedule_redraw(),
        ).pack(side="left", padx=(4, 12))
        self.legend = ttk.Frame(foot)
        self.legend.pack(side="left", fill="x", expand=True)
        self.info = ttk.Label(root, text="", padding=(8, 0, 8, 6))
        self.info.grid(row=4, column=0, columnspan=2, sticky="ew")

        for key, action in (
            ("c", self.capture),
            ("o", self.open_dialog),
            ("s", self.save),
            ("m", self.model_dialog),
            ("t", lambda: self.tta.set(not self.tta.get())),
        ):
            root.bind(f"<KeyPress-{key}>", lambda e, a=action: a())
        if enable_file_drop(self.canvases, self._dropped):
            self.canvases[0].itemconfigure("hint", text=HINT + " Or drop an image here.")
        self._set_buttons()

    def _dropped(self, path: str):
        self.log(f"dropped {path}")
        self.open_path(path)

    def _set_buttons(self):
        busy = bool(self.worker.busy_with)
        for name, b in self.buttons.items():
            enabled = not busy and (name != "save" or self.result is not None)
            b.state(["!disabled"] if enabled else ["disabled"])

    def say(self, text: str, error: bool = False):
        self.status.configure(text=text, foreground="#C00000" if error else "")
        if error:
            print(f"aerialseg: error: {text}", file=sys.stderr, flush=True)
        self.log(("error: " if error else "status: ") + text)

    # ------------------------------------------------------------------ jobs

    def _poll(self):
        self.worker.poll()
        if self.worker.busy_with:
            elapsed = time.monotonic() - self.worker.started
            self.status.configure(text=f"{self.worker.busy_with} {elapsed:.1f} s", foreground="")
        self.root.after(POLL_MS, self._poll)

    def _refused(self) -> bool:
        """One job at a time: a second request is turned down, visibly, not queued behind a
        slow one the user may already regret."""
        busy = self.worker.busy_with
        if busy:
            self.say(f"Busy ({busy.rstrip('…')}): wait for it to finish, then try again", True)
            self.log(f"refused: busy with {busy}")
        return bool(busy)

    def run(self, what: str, job, on_done) -> bool:
        if self._refused():
            return False
        self.worker.submit(what, job, lambda v: self._finish(on_done, v), self._failed)
        self.busy.configure(mode="indeterminate")
        self.busy.start(12)
        self._set_buttons()
        self.say(what)
        return True

    def _idle(self):
        self.busy.stop()
        self.busy.configure(mode="determinate", value=0)  # an empty bar, not a frozen block
        self._set_buttons()

    def _finish(self, on_done, value):
        self._idle()
        on_done(value)
        if self.closing:
            self.root.destroy()

    def close(self):
        """Closing mid-save would leave the save unfinished: wait for it; anything else
        (a prediction nobody will see) can simply be dropped."""
        if (self.worker.busy_with or "").startswith("Saving"):
            self.closing = True
            self.say("Closing when the save is done…")
        else:
            self.root.destroy()

    def _bug(self, exc, value, tb):
        """A failure in a Tk callback is a bug, but still must not pass silently."""
        import traceback

        traceback.print_exception(exc, value, tb)
        self.say(f"internal error: {exc.__name__}: {value}", error=True)

    def _failed(self, message: str):
        self._idle()
        self.say(message, error=True)

    def load_model(self, path):
        from ..inference.segmenter import load_model

        def job():
            seg = load_model(path)
            seg.segment(np.zeros((64, 64, 3), np.uint8))  # first call pays one-off setup
            return seg

        def loaded(seg):
            self.seg, self.model_path = seg, path
            self.say(f"Model {seg.name} ready")
            self.log(f"ready model={seg.name}")
            if self.pending_image:
                self.open_path(self.pending_image)
                self.pending_image = None

        self.run(f"Loading model {Path(path).name if path else '(bundled)'}…", job, loaded)

    def _no_model(self) -> bool:
        if self.seg is None and not self.worker.busy_with:
            self.say("No model loaded: choose one with Model…", error=True)
        return self.seg is None

    def segment(self, what: str, get_rgb, source: str, released: float | None = None):
        if self._no_model():
            return
        seg, tta = self.seg, self.tta.get()

        def job():
            rgb = get_rgb()
            t = time.perf_counter()
            labels = seg.segment(rgb, tta)
            return Result(rgb, labels, source, seg.classes, seg.name, time.perf_counter() - t, tta)

        if self.run(what, job, lambda r: self.show(r, released)):
            self.log(f"segmenting {source}")

    # ------------------------------------------------------------------ actions

    def capture(self):
        if self._refused() or self._no_model():
            return
        self.log("capture: hiding the window")
        self.root.withdraw()
        self.root.after(GRAB_DELAY_MS, self._grab)

    def _grab(self):
        try:
            shot = grab_screen()
            Overlay(
                self.root,
                shot,
                screen_area(self.root),
                self._framed,
                self.root.deiconify,
                self.log,
            )
        except Exception as e:  # never leave the user without a window
            self.root.deiconify()
            msg = str(e) if isinstance(e, AerialSegError) else f"{type(e).__name__}: {e}"
            self.say(f"capture failed: {msg}", error=True)

    def _framed(self, rgb: np.ndarray, rect: Rect, released: float):
        self.root.deiconify()
        h, w = rgb.shape[:2]
        self.segment(f"Segmenting {w}×{h}…", lambda: rgb, f"screen {rect}", released)

    def open_dialog(self):
        from tkinter import filedialog

        path = filedialog.askopenfilename(parent=self.root, filetypes=IMAGE_TYPES)
        if path:
            self.open_path(path)

    def open_path(self, path: str):
        from ..io.images import read_image

        name = Path(path).name
        self.segment(f"Reading and segmenting {name}…", lambda: read_image(path), str(path))

    def model_dialog(self):
        from tkinter import filedialog

        path = filedialog.askopenfilename(
            parent=self.root, filetypes=[("aerialseg models", "*.safetensors"), ("All", "*")]
        )
        if path:
            self.load_model(path)

    def save(self):
        if self.result is None:
            self.say("Nothing to save yet: capture or open an image first", error=True)
            return
        folder = self.autosave
        if not folder:
            from tkinter import filedialog

            folder = filedialog.askdirectory(
                parent=self.root, initialdir=self.save_dir, title="Save results into"
            )
            if not folder:
                return
            self.save_dir = folder
        self._save_into(folder)

    def _save_into(self, folder: str):
        r = self.result
        source = r.source if not r.source.startswith("screen") else "capture"
        stem = timestamped_stem(Path(source).stem)
        extra = {"source": r.source, "tta": r.tta, "seconds": round(r.seconds, 3)}

        def job():
            return save_result(folder, stem, r.rgb, r.labels, r.classes, r.model_name, extra)

        def saved(paths):
            stem = paths["input"].name.removesuffix("_input.png")
            self.say(f"Saved {len(paths)} files as {stem}_* in {folder}")
            self.log(f"saved {paths['input'].parent / stem}")

        self.run("Saving…", job, saved)

    # ------------------------------------------------------------------ showing a result

    def show(self, r: Result, released: float | None):
        from ..inference.outputs import class_stats

        self.result, self._preview = r, None
        self._set_buttons()
        self._redraw()
        for child in self.legend.winfo_children():
            child.destroy()
        import tkinter as tk
        from tkinter import ttk

        for row in class_stats(r.labels, r.classes):
            tk.Label(self.legend, background=row["color"], width=2, relief="solid", bd=1).pack(
                side="left", padx=(8, 2)
            )
            ttk.Label(self.legend, text=f"{row['class']} {row['percent']:.1f}%").pack(side="left")
        h, w = r.labels.shape
        info = f"Model {r.model_name}{' with TTA' if r.tta else ''} · {w} × {h} px · "
        info += f"segmented in {r.seconds:.2f} s"
        self.info.configure(text=info)
        self.say(f"Segmented {r.source}")
        self.root.update_idletasks()  # drawn now, not at the next idle moment
        if released is None:
            self.log(f"result shown {w}x{h} segment_s={r.seconds:.3f}")
        else:
            latency = time.monotonic() - released
            self.info.configure(text=f"{info} · on screen {latency:.2f} s after mouse release")
            self.log(
                f"result shown {w}x{h} segment_s={r.seconds:.3f} release_to_shown={latency:.3f}"
            )
        if self.autosave:
            self._save_into(self.autosave)

    def _schedule_redraw(self):
        if not getattr(self, "_redraw_pending", False):
            self._redraw_pending = True
            self.root.after(30, self._redraw)

    def _redraw(self):
        """Both views at the canvas size; the downscaled photo and labels are kept, so the
        opacity slider only recomputes a screen-sized blend."""
        from PIL import ImageTk

        from ..inference.outputs import overlay

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
        self._photos = [ImageTk.PhotoImage(Image.fromarray(a)) for a in (photo, blend)]
        for canvas, image in zip(self.canvases, self._photos):
            canvas.delete("all")
            canvas.create_image(box[0] // 2, box[1] // 2, image=image, anchor="center")


def run_app(model=None, tta=False, image=None, save_dir=None, autosave=None, verbose=False):
    if model and not Path(model).is_file():
        raise AerialSegError(f"{model}: no such model file")
    if image and not Path(image).is_file():
        raise AerialSegError(f"{image}: no such file")
    try:
        import tkinter as tk
    except ImportError:
        raise AerialSegError(
            "the app needs Tkinter, which this Python lacks (e.g. apt install python3-tk)"
        ) from None
    make_dpi_aware()
    try:
        root = tk.Tk(className="aerialseg")
    except tk.TclError as e:
        raise AerialSegError(f"cannot open the window: {e}") from None
    app = App(root, model, tta, save_dir, autosave, log_to_stdout(verbose))
    app.pending_image = image
    root.mainloop()
    return 0
