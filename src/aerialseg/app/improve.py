"""The window's *Improve model*, *Before/after*, *Save model…* and *Model…* menu.

Improve model (``i``; ``i`` again or Cancel stops it) saves the corrections of every image
painted so far into the corrections folder (asked once, or ``gui --corrections DIR``), then
fine-tunes the *base* model on that folder in a child process (tuning.py) while the window
stays usable, then loads the new model and re-segments the shown image. The base is the model
chosen with Model… (or the bundled one): each Improve starts again from it with all
corrections, rather than from the last improved model, so repeated improvements do not pile up
their drift. ``b`` toggles the shown map between before and after. The improved model lives in
a temporary folder until *Save model…* copies it (atomically) where the user says.

The fine-tune is counted in steps (``gui --improve-steps``, default the fine-tune's own), so
the same strokes teach the same model on a busy or an idle machine; its clock is only a guard
(``gui --improve-minutes``, default the fine-tune's). When the guard cuts a run short, the
model is still used, and the status line says so in the fine-tune's own words. With ``gui
--classes`` the table goes to the fine-tune, which learns its new classes (app/table.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..classes import IGNORE_INDEX
from .tuning import FineTune


class Improver:
    def __init__(
        self, app, bar, corrections_dir=None, minutes: float | None = None, steps: int | None = None
    ):
        import tkinter as tk
        from tkinter import ttk

        self.app, self.log = app, app.log
        self.folder = Path(corrections_dir) if corrections_dir else None
        self.minutes, self.steps = minutes, steps  # None: the fine-tune's defaults
        self.cut_short: str | None = None  # why the last improvement stopped early, if it did
        self.tune: FineTune | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="aerialseg-improved-"))
        self.improved: Path | None = None  # the last improved model (unsaved, in self.tmp)
        self.parent_of_improved: Path | None = None
        self.saved_model: Path | None = None  # the improved model last saved by Save model…
        self.before = self.after = None  # the two Results of the last improvement
        self.resegment_pending = False
        self.runs = 0

        b = app.buttons
        b["improve"] = ttk.Button(bar, text="Improve model", underline=0, command=self.improve)
        b["compare"] = ttk.Button(bar, text="Before/after", underline=0, command=self.toggle)
        b["savemodel"] = ttk.Button(bar, text="Save model…", command=self.save_model)
        for name in ("improve", "compare", "savemodel"):
            b[name].pack(side="left", padx=2)
        app.can["compare"] = self._comparable
        app.can["savemodel"] = lambda: self.improved is not None
        app.root.bind("<KeyPress-i>", lambda e: self.improve())
        app.root.bind("<KeyPress-b>", lambda e: self.toggle())
        app.root.bind("<KeyPress-S>", lambda e: self.save_model())  # Shift+S

        self.menu = tk.Menu(app.root, tearoff=False)
        self.menu.add_command(label="Checkpoint file…", command=app.model_dialog)
        self.menu.add_command(label="Bundled model", command=lambda: app.load_model(None))
        self.menu.add_command(label="Improved model", command=self._use_improved)

    def _comparable(self) -> bool:
        """The shown result is one of the last improvement's pair (identity: Results hold
        arrays, which do not compare with ==)."""
        r = self.app.result
        return r is not None and (r is self.before or r is self.after)

    # ------------------------------------------------------------------ Model… menu

    def model_menu(self):
        self.menu.entryconfigure(2, state="normal" if self.improved else "disabled")
        button = self.app.buttons["model"]
        self.menu.tk_popup(button.winfo_rootx(), button.winfo_rooty() + button.winfo_height())

    def _use_improved(self):
        if self.improved:
            self.app.load_model(self.improved)

    @property
    def base(self) -> Path:
        """The model Improve fine-tunes: the one chosen, unless that is the improved one."""
        from ..inference.segmenter import DEFAULT_MODEL

        path = self.app.model_path
        if path is not None and self.improved is not None and Path(path) == self.improved:
            return self.parent_of_improved
        return Path(path) if path else DEFAULT_MODEL

    # ------------------------------------------------------------------ improving

    def improve(self):
        app = self.app
        if self.tune is not None:
            self.tune.cancel()
            self.log("improve: cancel asked")
            return
        correct = app.correct
        if correct.corrections is None or not correct.corrections.labelled:
            app.say("Nothing to learn yet: paint corrections first (Correct, r)", error=True)
            return
        if self.folder is None:
            from tkinter import filedialog

            chosen = filedialog.askdirectory(
                parent=app.root, title="Folder for the corrections (images + labels)"
            )
            if not chosen:
                return
            self.folder = Path(chosen)
        folder, corrections = self.folder, correct.corrections
        app.run(
            "Saving corrections…",
            lambda: corrections.save(folder),
            lambda written: self._start(folder, len(written)),
        )

    def _start(self, folder: Path, images: int):
        app = self.app
        self.runs += 1
        base = self.base
        out = self.tmp / f"{base.stem}-improved-{self.runs}.safetensors"
        self.tune = FineTune(
            base, folder / "images", folder / "labels", out, self.minutes, self.steps, app.classes
        )
        app.buttons["improve"].configure(text="Cancel (i)")
        app.busy.configure(mode="determinate", value=0, maximum=1.0)
        app.say(f"Improving {Path(base).name} with {app.correct.summary()}…")
        self.log(f"improve started base={base} folder={folder} saved_images={images}")

    def poll(self):
        """Called by the window's poll: the child's progress, and its end."""
        t = self.tune
        if t is None:
            if self.resegment_pending:
                self._resegment()
            return
        seen = (t.fraction, t.message)
        ended = t.poll()
        if not ended:
            if (t.fraction, t.message) == seen:
                return
            self.app.busy.configure(value=t.fraction)
            if not self.app.worker.busy_with:
                self.app.status.configure(
                    text=f"Improving model {100 * t.fraction:.0f} % — {t.message}", foreground=""
                )
            self.log(f"improve progress {t.fraction:.3f} {t.message}")
            return
        self.tune = None
        self.app.buttons["improve"].configure(text="Improve model")
        self.app.busy.configure(value=0)
        if t.error:
            if t.error == "cancelled":
                self.app.say("Improve model cancelled: the model is unchanged")
                self.log("improve cancelled")
            else:
                self.app.say(f"Improve model failed: {t.error}", error=True)
            return
        self.improved, self.parent_of_improved = t.out, t.parent
        r = t.result
        self.cut_short = r.get("cut_short")
        self.log(
            f"improve finished steps={r['steps']} seconds={r['seconds']} out={t.out} "
            f"cut_short={self.cut_short!r}"
        )
        self.resegment_pending = True
        self._resegment()

    def _resegment(self):
        """The improved model, loaded and run on the shown image (once the worker is free)."""
        app = self.app
        before = app.result
        if app.worker.busy_with or before is None:
            return
        self.resegment_pending = False
        path, tta = self.improved, app.tta.get()

        def job():
            import time

            from .table import load_for_table
            from .worker import Result

            seg, unlearnt = load_for_table(path, app.device, app.classes)
            t = time.perf_counter()
            labels, confidence = seg.segment_confidence(before.rgb, tta)
            seconds = time.perf_counter() - t
            labels[before.labels == IGNORE_INDEX] = IGNORE_INDEX  # a raster's nodata stays so
            geo = before.geo
            return seg, Result(
                before.rgb, labels, before.source, seg.classes, seg.name, seconds, tta, geo,
                unlearnt=unlearnt,
            )  # fmt: skip

        def done(value):
            seg, after = value
            app.seg, app.model_path, app.unlearnt = seg, path, after.unlearnt
            self.before, self.after = before, after
            changed = float(np.mean(before.labels != after.labels))
            app.show(after, None)
            self._say_improved(changed)
            self.log(f"improved shown changed={changed:.4f}")

        app.run("Re-segmenting with the improved model…", job, done)

    def _say_improved(self, changed: float) -> None:
        """How much of the map changed (b: before/after), and, as a warning on the same line,
        the guard's note when it cut the fine-tune short: the model then learnt less than
        asked, depending on this machine's speed, which the user should know without a
        dialog in the way."""
        text = f"Improved: {100 * changed:.1f} % changed"
        if self.cut_short:
            self.app.say(f"{text} — {self.cut_short} (raise --improve-minutes)", warning=True)
        else:
            self.app.say(text)

    def toggle(self):
        app = self.app
        if not self._comparable():
            return
        r = self.after if app.result is self.before else self.before
        which = "after" if r is self.after else "before"
        app.result = r
        info = app.views.show(r)
        app.views.info.configure(text=f"{which.capitalize()} improving · {info}")
        self.log(f"showing {which}")

    # ------------------------------------------------------------------ saving

    def save_model(self, dest: str | None = None):
        app = self.app
        if self.improved is None:
            app.say("No improved model yet: Improve model first", error=True)
            return
        if dest is None:
            from tkinter import filedialog

            dest = filedialog.asksaveasfilename(
                parent=app.root,
                title="Save the improved model",
                defaultextension=".safetensors",
                initialfile=self.improved.name,
                filetypes=[("aerialseg models", "*.safetensors")],
            )
            if not dest:
                return
        source = self.improved

        def job():
            from ..io.files import write_atomic

            return write_atomic(dest, lambda tmp: shutil.copyfile(source, tmp))

        def saved(path):
            self.saved_model = source
            app.say(f"Saved the improved model as {path}")
            self.log(f"model saved {path}")

        app.run("Saving the model…", job, saved)

    def may_close(self) -> bool:
        """Nothing made in the window is dropped silently: corrections not yet in their folder
        are saved there (the folder asked for if none was chosen), and an improved model not
        yet saved is offered for saving. False: the user cancelled the closing."""
        from ..errors import AerialSegError

        c = self.app.correct.corrections
        try:
            if c is not None and c.unsaved() and not self._corrections_kept(c):
                return False
            return self._model_kept()
        except AerialSegError as e:
            self.app.say(str(e), error=True)
            return False

    def _corrections_kept(self, c) -> bool:
        from tkinter import filedialog, messagebox

        root = self.app.root
        if self.folder is None:
            answer = messagebox.askyesnocancel("aerialseg", "Save your corrections?", parent=root)
            if not answer:
                return answer is not None  # No: dropped by choice; Cancel: stay open
            chosen = filedialog.askdirectory(parent=root, title="Folder for the corrections")
            if not chosen:
                return False
            self.folder = Path(chosen)
        c.save(self.folder)
        self.log(f"corrections saved on closing into {self.folder}")
        return True

    def _model_kept(self) -> bool:
        from tkinter import filedialog, messagebox

        from ..io.files import write_atomic

        if self.improved is None or self.saved_model == self.improved:
            return True
        answer = messagebox.askyesnocancel(
            "aerialseg", "The improved model is not saved. Save it?", parent=self.app.root
        )
        if answer is None:
            return False
        if answer:
            dest = filedialog.asksaveasfilename(
                parent=self.app.root, defaultextension=".safetensors", title="Save the model"
            )
            if not dest:
                return False
            write_atomic(dest, lambda tmp: shutil.copyfile(self.improved, tmp))
        return True

    def close(self):
        if self.tune is not None:
            self.tune.cancel()
        shutil.rmtree(self.tmp, ignore_errors=True)
