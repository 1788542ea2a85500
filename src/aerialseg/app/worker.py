"""The app's background thread, and what it hands back: a segmented image.

Tk must only be touched from the thread running its main loop, so everything slow (loading the
model, segmenting, saving) runs on one worker thread and hands its result back through a queue
that the main loop polls. The window therefore never freezes, and the worker's single slot is
also what refuses a second capture while one is still being segmented.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..classes import ClassTable
from ..errors import AerialSegError


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


def import_model_code():
    """``inference.segmenter.load_segmenter``, importing torch the first time: on the worker, so
    the window is up and its clock running during the ~1.3 s import, not blank until it ends.

    The collector is off during that import and its ~245 000 objects are then frozen out of
    its way: a full collection holds the GIL, and each one over torch's objects stopped the
    window's loop 45-165 ms while the model loaded (py-spy: ``gc_collect_main``, during the
    import and in ``load_segmenter``'s deepcopy). Later collections scan only newer objects.
    """
    import gc

    first = "torch" not in sys.modules
    enabled = gc.isenabled()
    if first:
        gc.disable()
    try:
        from ..inference.segmenter import load_segmenter
    finally:
        if first:
            gc.freeze()
            if enabled:
                gc.enable()
    return load_segmenter


class StallMeter:
    """How long the event loop could not react while a job ran: the longest gap between two
    of its polls beyond the poll period, counted per job.

    Counting starts when the job is submitted (``begin``), not at the previous poll: a gap
    that began before the job belongs to whatever ran then. Without that, the app's start-up
    (importing torch on the main thread, 1.3-1.5 s here, the window up but its loop not yet
    turning) was logged as the first capture's stall.
    """

    def __init__(self, period_s: float):
        self.period = period_s
        self.last = time.monotonic()  # the latest poll, or the latest job's submission
        self.longest = 0.0

    def begin(self, now: float | None = None) -> None:
        """A job was submitted (from an event-loop callback: the loop is turning now)."""
        self.last, self.longest = time.monotonic() if now is None else now, 0.0

    def tick(self, busy: bool, now: float | None = None) -> None:
        """One poll of the event loop; its gap counts while a job is ``busy``."""
        now = time.monotonic() if now is None else now
        if busy:
            self.longest = max(self.longest, now - self.last - self.period)
        self.last = now

    def take(self) -> float:
        """The longest stall (seconds) since ``begin``; the next job starts from zero."""
        longest, self.longest = self.longest, 0.0
        return longest


@dataclass
class Result:
    """One segmented image, as shown in the window and written by Save…"""

    rgb: np.ndarray
    labels: np.ndarray
    source: str  # a file path, or "screen WxH at (X, Y)" for a capture
    classes: ClassTable
    model_name: str
    seconds: float  # the model's time alone
    tta: bool
    geo: object = None  # app.sources.GeoRef where the source is a georeferenced raster
    warning: str | None = None  # why the map should not be trusted (inference.confidence)
    unlearnt: tuple[str, ...] = ()  # classes of gui --classes the model lacks (app/table.py)
