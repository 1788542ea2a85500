"""*Improve model*'s fine-tune, run in a child process, without Tk.

Why a process and not the app's worker thread: a fine-tune keeps both cores busy for minutes
in torch *and* in Python (crops, the loop), and a thread of the app's own interpreter then
competes with Tk for the GIL, so clicks and repaints wait. A child has its own interpreter, the
operating system shares the cores, and Cancel is a clean kill: the checkpoint is written
atomically at the very end, so a killed child leaves no model behind (measured in
benchmarks/app_finetune.py: event-loop stalls with the fine-tune in a thread vs a process).

The child is ``python -m aerialseg.app.tuning JSON`` and runs the same
:func:`aerialseg.training.finetune.finetune` as ``aerialseg finetune``; it writes one JSON
object per line on stdout: ``{"progress": f, "message": m}``, then ``{"done": record}`` or
``{"error": "one line"}``. The record says ``cut_short`` when the fine-tune's clock guard
stopped it before its steps were done.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path


class FineTune:
    """One fine-tune running in a child process; poll it from the Tk thread."""

    def __init__(
        self,
        parent,
        images,
        labels,
        out,
        minutes: float | None = None,
        steps: int | None = None,
        classes=None,
    ):
        """``minutes`` (the guard) and ``steps``: None for FinetuneConfig's defaults;
        ``classes``: the user's ClassTable (``gui --classes``), new classes included."""
        args = {
            "parent": str(parent),
            "images": str(images),
            "labels": str(labels),
            "out": str(out),
            "minutes": minutes,
            "steps": steps,
            "classes": classes.to_dict() if classes is not None else None,
        }
        self.parent, self.out = Path(parent), Path(out)
        self.fraction, self.message = 0.0, "starting"
        self.result: dict | None = None
        self.error: str | None = None
        self._lines: queue.Queue = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aerialseg.app.tuning", json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read, daemon=True, name="aerialseg-finetune").start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self.proc.wait()
        self._lines.put(None)  # the child is gone

    def poll(self) -> bool:
        """Take in what the child said; True once it has ended (see result / error)."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return False
            if line is None:
                if self.result is None and self.error is None:
                    err = self.proc.stderr.read().strip().splitlines()
                    self.error = (
                        "cancelled"
                        if self.proc.returncode < 0
                        else f"the fine-tune stopped (exit {self.proc.returncode})"
                        + (f": {err[-1]}" if err else "")
                    )
                return True
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing on stdout)
            if "progress" in msg:
                self.fraction, self.message = float(msg["progress"]), str(msg["message"])
            elif "done" in msg:
                self.result = msg["done"]
            elif "error" in msg:
                self.error = str(msg["error"])

    def cancel(self) -> None:
        """Kill the child; poll() then reports it ended with error "cancelled"."""
        if self.proc.poll() is None:
            self.proc.terminate()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None


def _say(**msg) -> None:
    print(json.dumps(msg), flush=True)


def main(argv: list[str]) -> int:
    from ..classes import ClassTable
    from ..config import FinetuneConfig
    from ..errors import AerialSegError

    a = json.loads(argv[0])
    try:
        from ..training.finetune import finetune

        given = {k: a[k] for k in ("minutes", "steps") if a.get(k)}  # else finetune's defaults
        cfg = FinetuneConfig(**given)
        table = a.get("classes")
        record = finetune(
            a["parent"],
            a["images"],
            a["labels"],
            a["out"],
            cfg,
            progress=False,
            log=lambda m: None,
            on_progress=lambda f, m: _say(progress=round(f, 4), message=m),
            classes=ClassTable.from_dict(table) if table else None,
        )
    except AerialSegError as e:
        _say(error=str(e))
        return 2
    _say(done=record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
