"""Many inputs segmented by several workers: the job manifest and the engines that run jobs.

The manifest (``segment-batch.json`` in the output folder) is written by the driver alone,
atomically, whenever a job starts or ends. A job marked ``done`` is skipped by a rerun only
if its input is unchanged (path, size, modification time), every output it recorded is
there, and the run's options are the same; a job left ``running`` (the run was cut off) or
``failed`` is done again, replacing its own outputs.

Engines: ``local`` (in this process with one worker, else a pool of spawned processes) and
``ray`` (one Ray task per job, on a local Ray or a cluster; the optional ``distributed``
extra). Both take a module-level function ``task(job) -> dict`` that reports its own errors
in the dict; an engine-level failure (a worker that died) becomes such a dict too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import AerialSegError
from ..io.files import read_mapping, write_text

MANIFEST = "segment-batch.json"
ENGINES = ("local", "ray")


def fingerprint(path: Path) -> dict:
    """What tells a changed input from the one segmented: its size and modification time."""
    st = path.stat()
    return {"input": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    """The state of every job of a batch output folder (one JSON file)."""

    def __init__(self, folder: Path, options: dict):
        self.path = Path(folder) / MANIFEST
        self.options = json.loads(json.dumps(options))  # as read back: tuples are lists
        self.jobs: dict[str, dict] = {}
        self.options_changed = False
        if self.path.exists():
            old = read_mapping(self.path, "manifest")
            jobs = old.get("jobs")
            if not isinstance(jobs, dict):
                raise AerialSegError(f"{self.path}: not a segment-batch manifest (no jobs)")
            self.jobs = jobs
            self.options_changed = bool(jobs) and old.get("options") != self.options

    def complete(self, name: str, path: Path) -> bool:
        """Whether job ``name`` (input ``path``) was done by an earlier run with the same
        options, on the same input, and all its outputs are still there."""
        entry = self.jobs.get(name)
        if not entry or entry.get("status") != "done" or self.options_changed:
            return False
        try:
            same = {k: entry.get(k) for k in ("input", "size", "mtime_ns")} == fingerprint(path)
        except OSError:
            return False
        folder = self.path.parent
        return same and all((folder / f).is_file() for f in entry.get("outputs", ()))

    def owns(self, name: str) -> bool:
        """Whether the outputs of job ``name`` are this manifest's to replace."""
        return name in self.jobs

    def update(self, name: str, **entry) -> None:
        self.jobs[name] = {**self.jobs.get(name, {}), **entry}
        self.save()

    def save(self) -> None:
        body = {"version": 1, "options": self.options, "jobs": self.jobs}
        write_text(self.path, json.dumps(body, indent=1) + "\n")


def run_jobs(
    task: Callable[[dict], dict],
    jobs: list[dict],
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    on_start: Callable[[dict], None] = lambda job: None,
) -> Iterator[tuple[dict, dict]]:
    """Run ``task`` on every job, at most ``workers`` at once; yield (job, result) as each
    finishes. ``on_start(job)`` is called just before a job is handed to a worker."""
    if engine == "ray":
        yield from _run_ray(task, jobs, workers, address, on_start)
    elif workers <= 1:
        for job in jobs:
            on_start(job)
            yield job, task(job)
    else:
        yield from _run_pool(task, jobs, workers, on_start)


def _windowed(jobs: Iterable[dict], limit: int, submit, next_done, on_start):
    """Keep ``limit`` jobs in flight: ``submit(job) -> handle``, ``next_done(handles) ->
    (handle, result)``."""
    queue, pending = list(jobs), {}
    while queue or pending:
        while queue and len(pending) < limit:
            job = queue.pop(0)
            on_start(job)
            pending[submit(job)] = job
        handle, result = next_done(list(pending))
        yield pending.pop(handle), result


def _run_pool(task, jobs, workers, on_start):
    """A pool of spawned processes (not forked: a fork of a process whose OpenMP threads
    have run can hang), each loading torch and the model once. A worker that dies (killed,
    out of memory) breaks the pool: the jobs it held fail, and a new pool takes the rest."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    pools = [ProcessPoolExecutor(workers, mp_context=ctx)]

    def submit(job):
        try:
            return pools[-1].submit(task, job)
        except BrokenProcessPool:
            pools.append(ProcessPoolExecutor(workers, mp_context=ctx))
            return pools[-1].submit(task, job)

    def next_done(futures):
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        fut = next(iter(done))
        try:
            return fut, fut.result()
        except Exception as e:  # noqa: BLE001 - a worker that died: this job fails, not all
            return fut, {"status": "failed", "error": f"worker process failed ({_one_line(e)})"}

    try:
        yield from _windowed(jobs, workers, submit, next_done, on_start)
    finally:
        for pool in pools:
            pool.shutdown(cancel_futures=True)


def need_ray():
    """The ray module, or one line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise AerialSegError(
            "--engine ray needs Ray: pip install 'aerialseg[distributed]' (or --engine local)"
        ) from None
    return ray


def ray_cpus(address: str | None) -> int:
    """The CPUs of the Ray cluster at ``address`` (started here, on this machine, when none
    is given and none runs in this process yet)."""
    ray = need_ray()
    if not ray.is_initialized():
        import logging

        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,  # a task's errors come back in its result
                logging_level=logging.WARNING,
            )
        except Exception as e:  # noqa: BLE001 - connection errors come as several types
            where = f"--address {address}" if address else "a local Ray"
            raise AerialSegError(f"cannot start {where} ({_one_line(e)})") from None
    return int(ray.cluster_resources().get("CPU", 0))


def _run_ray(task, jobs, workers, address, on_start):
    """One Ray task per job, each reserving ``job["threads"]`` CPUs of the cluster (Ray
    places them; the window of ``workers`` keeps the manifest's "running" marks true)."""
    ray = need_ray()
    ray_cpus(address)
    remote = ray.remote(task)

    def submit(job):
        return remote.options(num_cpus=job.get("threads") or 1, max_retries=1).remote(job)

    def next_done(refs):
        ready, _ = ray.wait(refs, num_returns=1)
        try:
            return ready[0], ray.get(ready[0])
        except Exception as e:  # noqa: BLE001 - RayTaskError, WorkerCrashedError...
            return ready[0], {"status": "failed", "error": f"Ray task failed ({_one_line(e)})"}

    yield from _windowed(jobs, workers, submit, next_done, on_start)


def _one_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[-1]}" if lines else type(e).__name__


def default_threads(cpus: int, workers: int) -> int:
    """Torch threads per worker: the CPUs shared out (never more threads than cores in all,
    which on a 2-core machine would only make the workers take turns)."""
    return max(1, cpus // max(1, workers))


def cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def log(line: str) -> None:
    """A line beside the progress bar."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
