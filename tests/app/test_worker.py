"""The worker thread: one job at a time, results and errors handed back on poll()."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from aerialseg.app.worker import StallMeter, Worker
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


def test_a_stall_is_counted_for_the_job_it_happened_in():
    """The app's start-up (a 1.5 s gap: importing torch before the loop turned) was once
    logged as the first capture's stall: each job's count starts at its submission."""
    m = StallMeter(0.02)
    m.begin(now=10.0)  # loading the model
    m.tick(True, now=11.5)  # the loop's first turn, 1.5 s later
    m.tick(True, now=11.52)
    assert abs(m.take() - 1.48) < 1e-9  # the load's stall, logged with "ready model="
    for t in (12.0, 15.0):  # idle: gaps between polls while no job runs do not count
        m.tick(False, now=t)
    m.begin(now=15.3)  # a capture, submitted 0.3 s after the last poll
    m.tick(True, now=15.32)
    m.tick(True, now=15.40)  # one 80 ms gap while it runs
    m.tick(True, now=15.42)
    assert abs(m.take() - 0.06) < 1e-9
    m.tick(True, now=15.45)
    assert abs(m.take() - 0.01) < 1e-9  # take() restarts the count


def test_the_model_code_is_imported_with_torch_frozen_out_of_the_collector():
    """In a fresh process (torch not yet imported): the collector is back on afterwards, and
    torch's objects are frozen, so no full collection over them holds the GIL later."""
    code = (
        "import gc, sys; from aerialseg.app.worker import import_model_code; "
        "assert 'torch' not in sys.modules; load_model = import_model_code(); "
        "print(load_model.__name__, gc.isenabled(), gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    name, enabled, frozen = out.stdout.split()
    assert (name, enabled) == ("load_segmenter", "True")  # load_model is its earlier name
    assert int(frozen) > 100_000, out.stdout  # torch's modules, functions, classes...


def _poll_until(w: Worker, got: list, n: int):
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        w.poll()
        time.sleep(0.01)
