"""The worker thread: one job at a time, results and errors handed back on poll()."""

from __future__ import annotations

import threading
import time

from aerialseg.app.worker import Worker
from aerialseg.errors import AerialSegError


def test_worker_runs_one_job_at_a_time_and_reports_errors():
    w = Worker()
    gate, got = threading.Event(), []
    assert w.submit("slow", lambda: gate.wait(5) and 42, got.append, got.append)
    assert not w.submit("second", lambda: 1, got.append, got.append)  # refused while busy
    assert w.busy_with == "slow"
    gate.set()
    _poll_until(w, got, 1)
    assert got == [42] and w.busy_with is None

    def bad():
        raise AerialSegError("cannot read image")

    assert w.submit("bad", bad, got.append, lambda m: got.append(f"error: {m}"))
    _poll_until(w, got, 2)
    assert got[1] == "error: cannot read image"


def _poll_until(w: Worker, got: list, n: int):
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        w.poll()
        time.sleep(0.01)
