"""The app's background thread, and what it hands back: a segmented image.

Tk must only be touched from the thread running its main loop, so everything slow (loading the
model, segmenting, saving) runs on one worker thread and hands its result back through a queue
that the main loop polls. The window therefore never freezes, and the worker's single slot is
also what refuses a second capture while one is still being segmented.
"""

from __future__ import annotations

import queue
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
