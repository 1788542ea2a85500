"""The app's window: toolbar, keys, and the actions behind them (capture, open, save, model).

Everything slow runs on the worker thread (worker.py), so the window never freezes and a second
request while one runs is refused, visibly. Capture hides the window, grabs the screen
(capture.py) and shows it in a full-screen overlay (overlay.py) on which the user drags a
rectangle; the result is drawn by views.py. Tkinter and the model are imported only when the
app runs: ``from aerialseg.app.window import run_app`` imports neither.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..classes import IGNORE_INDEX
from ..errors import AerialSegError
from ..inference.confidence import unusual
from ..inference.familiarity import image_familiarity
from ..io.outputs import timestamped_stem
from ..jobs.save import save_result
from .capture import Rect, grab_screen, make_dpi_aware
from .drop import enable_file_drop
from .overlay import Overlay, screen_area
from .views import HINT, Views
from .worker import Result, StallMeter, Worker, import_model_code, log_to_stdout

GRAB_DELAY_MS = 200  # time for the window manager to unmap us and repaint what was beneath
POLL_MS = 20
IMAGE_TYPES = [
    ("Images and rasters", "*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp *.vrt *.jp2 *.img"),
    ("All files", "*"),
]


class App:
    def __init__(
        self, root, model_path, tta, save_dir, autosave, log, device="auto", classes=None, **improve
    ):
        import tkinter as tk

        self.root, self.log, self.device = root, log, device
        self.classes = classes  # gui --classes: the user's table (app/table.py), else None
        self.unlearnt: tuple[str, ...] = ()  # its classes the loaded model lacks
        self.model_path, self.save_dir, self.autosave = model_path, save_dir, autosave
        self.worker = Worker()
        self.seg = None
        self.result: Result | None = None
        self.pending_image: str | None = None
        self.tta = tk.BooleanVar(value=tta)
        self.closing = False
        self.can = {"save": lambda: self.result is not None}  # a button's extra condition
        # how long the window could not react while a job ran: logged with each result and
        # with "ready model=" as stall_max_ms
        self.stalls = StallMeter(POLL_MS / 1000)
        self._build(improve)
        root.report_callback_exception = self._bug
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.after(POLL_MS, self._poll)
        self.load_model(model_path)

    # ------------------------------------------------------------------ layout

    def _build(self, improve: dict):
        from tkinter import ttk

        from .correct_mode import CorrectMode
        from .improve import Improver

        root = self.root
        root.title("aerialseg")
        root.geometry("1280x760")
        root.minsize(640, 420)
        bar = ttk.Frame(root, padding=(6, 6, 6, 2))
        bar.grid(row=0, column=0, columnspan=2, sticky="ew")
        self.buttons = {
            "capture": ttk.Button(bar, text="Capture", underline=0, command=self.capture),
            "open": ttk.Button(bar, text="Open image…", underline=0, command=self.open_dialog),
            "save": ttk.Button(bar, text="Save…", underline=0, command=self.save),
            "model": ttk.Button(bar, text="Model…", underline=0, command=self._model_menu),
        }
        for b in self.buttons.values():
            b.pack(side="left", padx=2)
        ttk.Checkbutton(bar, text="TTA (8× slower)", variable=self.tta).pack(side="left", padx=8)
        self.improver = Improver(self, bar, **improve)  # corrections folder, minutes, steps
        self.busy = ttk.Progressbar(bar, mode="determinate", length=120)
        self.busy.pack(side="right", padx=4)
        self.status = ttk.Label(bar, text="", anchor="e")
        self.status.pack(side="right", fill="x", expand=True, padx=6)

        self.views = Views(root)
        self.correct = CorrectMode(self, row=5)

        for key, action in (
            ("c", self.capture),
            ("o", self.open_dialog),
            ("s", self.save),
            ("m", self._model_menu),
            ("t", lambda: self.tta.set(not self.tta.get())),
        ):
            root.bind(f"<KeyPress-{key}>", lambda e, a=action: a())
        root.bind("<Control-q>", lambda e: self.close())  # as the window's close button
        if enable_file_drop(self.views.canvases, self._dropped):
            self.views.set_hint(HINT + " Or drop an image here.")
        self._set_buttons()

    def _dropped(self, path: str):
        self.log(f"dropped {path}")
        self.open_path(path)

    def _set_buttons(self):
        busy = bool(self.worker.busy_with)
        for name, b in self.buttons.items():
            enabled = not busy and self.can.get(name, lambda: True)()
            b.state(["!disabled"] if enabled else ["disabled"])

    def say(self, text: str, error: bool = False, warning: bool = False):
        kind = "error" if error else "warning" if warning else "status"
        colour = {"error": "#C00000", "warning": "#A04000"}.get(kind, "")
        self.status.configure(text=text, foreground=colour)
        if kind != "status":
            print(f"aerialseg: {kind}: {text}", file=sys.stderr, flush=True)
        self.log(f"{kind}: {text}")

    # ------------------------------------------------------------------ jobs

    def _poll(self):
        self.stalls.tick(bool(self.worker.busy_with or self.improver.tune))
        self.worker.poll()
        self.improver.poll()
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
        self.stalls.begin()
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
        elif self.improver.may_close():
            self.improver.close()
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
        def job():
            from .table import load_for_table

            import_model_code()
            seg, unlearnt = load_for_table(path, self.device, self.classes)
            seg.segment(np.zeros((64, 64, 3), np.uint8))  # first call pays one-off setup
            return seg, unlearnt

        def loaded(value):
            seg, self.unlearnt = value
            self.seg, self.model_path = seg, path
            self.say(f"Model {seg.name} ready")
            self.log(f"ready model={seg.name} stall_max_ms={1000 * self.stalls.take():.0f}")
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
        seg, tta, unlearnt = self.seg, self.tta.get(), self.unlearnt

        def job():
            rgb, valid, geo = get_rgb()
            t = time.perf_counter()
            labels, confidence = seg.segment_confidence(rgb, tta)
            seconds = time.perf_counter() - t
            if valid is not None:
                labels[~valid] = IGNORE_INDEX  # no data in the raster: no class in the map
            near = image_familiarity(seg, rgb, valid)  # imagery unlike the training data's
            warning = unusual(rgb, confidence, seg.meta, near)  # a black capture is not "Water"
            return Result(
                rgb, labels, source, seg.classes, seg.name, seconds, tta, geo, warning, unlearnt
            )

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
        self.segment(f"Segmenting {w}×{h}…", lambda: (rgb, None, None), f"screen {rect}", released)

    def open_dialog(self):
        from tkinter import filedialog

        path = filedialog.askopenfilename(parent=self.root, filetypes=IMAGE_TYPES)
        if path:
            self.open_path(path)

    def open_path(self, path: str):
        """A picture, or any raster GDAL reads (decimated when large, georeference kept)."""
        from .sources import read_picture

        name = Path(path).name
        self.segment(f"Reading and segmenting {name}…", lambda: read_picture(path), str(path))

    def _model_menu(self):
        if not self._refused():
            self.improver.model_menu()

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
        extra = {
            "source": r.source,
            "tta": r.tta,
            "seconds": round(r.seconds, 3),
            "warning": r.warning,
        }
        if r.geo is not None:
            extra.update(r.geo.describe())

        def job():
            return save_result(
                folder, stem, r.rgb, r.labels, r.classes, r.model_name, extra, geo=r.geo
            )

        def saved(paths):
            stem = paths["input"].name.removesuffix("_input.png")
            self.say(f"Saved {len(paths)} files as {stem}_* in {folder}")
            self.log(f"saved {paths['input'].parent / stem}")

        self.run("Saving…", job, saved)

    # ------------------------------------------------------------------ showing a result

    def show(self, r: Result, released: float | None):
        self.result = r
        self._set_buttons()
        self.correct.attach(r)
        info = self.views.show(r)
        if r.warning:  # in the status line, in red: the map is there, but not to be trusted
            self.say(f"Segmented {r.source} — {r.warning}", warning=True)
        else:
            self.say(f"Segmented {r.source}")
        self.root.update_idletasks()  # drawn now, not at the next idle moment
        h, w = r.labels.shape
        fields = f"stall_max_ms={1000 * self.stalls.take():.0f}"
        if r.unlearnt:  # gui --classes: classes the model cannot show yet (app/table.py)
            fields += f" unlearnt={','.join(r.unlearnt)}"
        if r.geo is not None:  # where it lies, and how much it was decimated to be shown
            fields += f" crs={r.geo.crs} downsampled_by={r.geo.factor:.2f}"
        if released is None:
            self.log(f"result shown {w}x{h} segment_s={r.seconds:.3f} {fields}")
        else:
            latency = time.monotonic() - released
            self.views.info.configure(
                text=f"{info} · on screen {latency:.2f} s after mouse release"
            )
            self.log(
                f"result shown {w}x{h} segment_s={r.seconds:.3f} release_to_shown={latency:.3f} "
                + fields
            )
        if self.autosave:
            self._save_into(self.autosave)


def run_app(
    model=None,
    tta=False,
    image=None,
    save_dir=None,
    autosave=None,
    verbose=False,
    device="auto",
    classes=None,
    **improve,
):
    """The app; ``classes``: the user's ClassTable (app/table.py), checked against the model
    before this is called; ``improve``: Improver's corrections_dir, minutes and steps."""
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
    log = log_to_stdout(verbose)
    app = App(root, model, tta, save_dir, autosave, log, device, classes, **improve)
    app.pending_image = image
    root.mainloop()
    return 0
