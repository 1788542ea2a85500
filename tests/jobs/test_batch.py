"""The engines of segment-batch without a model: every job's result comes back, in the
order jobs finish, and a worker process that dies fails only what the pool held."""

from __future__ import annotations

import json
import os
import time

from aerialseg.jobs.batch import Manifest, run_jobs


def task(job: dict) -> dict:
    """Module level, so that spawned workers import it."""
    if job["n"] == job.get("crash"):
        os._exit(9)  # as the kernel's OOM killer would end it: no exception, no cleanup
    time.sleep(job.get("sleep", 0))
    return {"status": "done", "n": job["n"], "pid": os.getpid()}


def test_inline_runs_in_this_process_in_order():
    started = []
    jobs = [{"n": i} for i in range(3)]
    results = list(run_jobs(task, jobs, "local", 1, on_start=lambda j: started.append(j["n"])))
    assert [r["n"] for _, r in results] == [0, 1, 2] == started
    assert {r["pid"] for _, r in results} == {os.getpid()}


def test_pool_survives_a_dead_worker():
    jobs = [{"n": i, "crash": 2, "sleep": 0.2} for i in range(8)]
    started = []
    results = dict(
        (job["n"], r) for job, r in run_jobs(task, jobs, "local", 2, on_start=started.append)
    )
    assert sorted(results) == list(range(8)) and len(started) == 8
    failed = [n for n, r in results.items() if r["status"] == "failed"]
    # the dead one, and at most the one running beside it (2 in flight at any time)
    assert 2 in failed and len(failed) <= 2
    assert "worker process failed" in results[2]["error"]
    assert all(results[n]["status"] == "done" for n in range(5, 8))  # a new pool took them
    assert os.getpid() not in {r.get("pid") for r in results.values()}


def test_manifest_is_complete_only_for_unchanged_inputs_with_outputs(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(b"x")
    (tmp_path / "out").mkdir()
    m = Manifest(tmp_path / "out", {"tta": False})
    from aerialseg.jobs.batch import fingerprint

    m.update("a", status="done", outputs=["a_labels.png"], **fingerprint(src))
    assert not Manifest(tmp_path / "out", {"tta": False}).complete("a", src)  # no output yet
    (tmp_path / "out" / "a_labels.png").write_bytes(b"")
    assert Manifest(tmp_path / "out", {"tta": False}).complete("a", src)
    assert not Manifest(tmp_path / "out", {"tta": True}).complete("a", src)  # other options
    src.write_bytes(b"xy")  # the input changed
    assert not Manifest(tmp_path / "out", {"tta": False}).complete("a", src)
    saved = json.loads((tmp_path / "out" / "segment-batch.json").read_text())
    assert saved["jobs"]["a"]["status"] == "done" and saved["options"] == {"tta": False}
