"""``aerialseg segment-batch``: many images or rasters, one job each, on several workers.

Each job is exactly what ``segment`` does for that input (``jobs.segment.segment_file``: a
large GeoTIFF is streamed through the windows in bounded memory into one output), run by a
local process or a Ray task that gets the model's flags and the segment options as plain
values. A manifest in the output folder lets a rerun skip what is complete and redo what was
cut off; a job that fails is reported in one line and the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path

from ..errors import AerialSegError
from ..jobs.batch import ENGINES
from . import common
from .segmentation import add_segment_options, segment_options

# the flags that change what is written: a rerun with other values does every input again
OUTPUT_OPTIONS = (
    "tta",
    "scales",
    "window",
    "overlap",
    "opacity",
    "gsd",
    "input_gsd",
    "save_probabilities",
    "max_pixels",
    "precision",
    "runtime",
    "bands",
    "stretch",
    "nodata",
    "cog",
    "confidence",
    "vector",
    "vector_format",
    "mmu",
    "zones",
    "simplify",
)

_SEGMENTERS: dict = {}  # per worker process: the model is loaded once, not once per job
# what says which model runs how: the worker's segmenter is made from these flags
MODEL_FLAGS = ("model", "precision", "window", "overlap", "batch_size", "device", "runtime")
MODEL_FLAGS += ("scales", "classes")


def _segmenter(flags: dict):
    from ..classes import ClassTable
    from ..inference.segmenter import load_segmenter
    from ..inference.tiling import Tiling

    key = tuple(tuple(v) if isinstance(v, list) else v for v in map(flags.get, MODEL_FLAGS))
    if key not in _SEGMENTERS:
        tiling = Tiling(window=flags["window"], overlap=flags["overlap"],
                        batch_size=flags["batch_size"])  # fmt: skip
        table = ClassTable.from_file(flags["classes"]) if flags["classes"] else None
        _SEGMENTERS[key] = load_segmenter(
            flags["model"], flags["precision"], tiling, flags["device"], flags["runtime"],
            tuple(flags["scales"]), table,
        )  # fmt: skip
    return _SEGMENTERS[key]


def segment_job(job: dict) -> dict:
    """One input segmented into the output folder, in a worker: the result as a dict (an
    error too, so one bad input never stops the others). ``job["options"]``: the
    :class:`SegmentOptions` as plain values; ``job["model"]``: :data:`MODEL_FLAGS`."""
    from ..jobs.segment import SegmentOptions, segment_file

    start = time.perf_counter()
    path, out = Path(job["input"]), Path(job["out"])
    try:
        options = SegmentOptions(**{**job["options"], "overwrite": job["overwrite"]})
        with _threads(job.get("threads")):
            seg = _segmenter(job["model"])
            result = segment_file(seg, path, out, options, name=job["name"])
        info = result.stats
        return {
            "status": "kept" if result.skipped else "done",
            "outputs": sorted(os.path.relpath(p, out) for p in result.outputs.values()),
            "pixels": int(info["width"]) * int(info["height"]),
            "seconds": round(time.perf_counter() - start, 3),
            "warning": result.warning,  # the driver prints it
            "notes": result.notes,
        }
    except Exception as e:  # noqa: BLE001 - reported in one line; the other jobs go on
        error = str(e) if isinstance(e, AerialSegError) else f"{type(e).__name__}: {e}"
        error = " ".join(line.strip() for line in error.splitlines() if line.strip())
        if str(path) not in error:
            error = f"{path}: {error}"
        return {"status": "failed", "error": error}


@contextlib.contextmanager
def _threads(n: int | None):
    """torch's thread count for one job (given back after: the job may run in the driver)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cmd_segment_batch(args) -> int:
    from ..io.files import check_writable_folder
    from ..io.images import collect_images
    from ..jobs import batch

    if args.address and args.engine != "ray":
        raise AerialSegError("--address is for --engine ray")
    out = check_writable_folder(Path(args.out)).absolute()
    options = segment_options(args)  # every option checked before anything slow
    common.class_table(args)  # and the legend (workers read it again: a path travels)
    skipped_files: list[str] = []
    images, failures = collect_images(args.inputs, skipped_files)
    if not images:
        raise AerialSegError("; ".join(failures) or f"no images found in {' '.join(args.inputs)}")
    # paths that workers in other folders (Ray) see too: absolute, on storage they share
    args.model = str(Path(args.model).absolute()) if args.model else None
    if options.zones:
        options.zones = args.zones = str(Path(options.zones).absolute())
    args.classes = str(Path(args.classes).absolute()) if args.classes else None
    model = {k: getattr(args, k) for k in MODEL_FLAGS}
    seg = _segmenter(model)  # a bad --model: one line now, not once per job
    for line in skipped_files:
        print(f"aerialseg: note: {line}", file=sys.stderr)
    manifest = batch.Manifest(out, _options(args, seg))
    if manifest.options_changed:
        batch.log(f"aerialseg: note: other options than the last run in {out}: all redone")
    jobs, skipped = [], 0
    for path, name in images:
        if not args.overwrite and manifest.complete(name, path.absolute()):
            skipped += 1
            continue
        overwrite = args.overwrite or manifest.owns(name)  # its outputs were ours to write
        # the path as given (the statistics record it, as `segment`'s do), absolute for Ray
        where = path.absolute() if args.engine == "ray" else path
        jobs.append({"input": str(where), "name": name, "overwrite": overwrite})

    started_ray = args.engine == "ray" and not batch.need_ray().is_initialized()
    try:
        cpus = batch.ray_cpus(args.address) if args.engine == "ray" else batch.cpu_count()
        workers = args.workers or (cpus if args.engine == "ray" else 1)
        threads = args.threads or batch.default_threads(cpus, workers)
        if args.engine == "ray" and threads > cpus:
            raise AerialSegError(f"--threads {threads}: the Ray cluster has {cpus} CPUs")
        plain = dataclasses.asdict(options)  # plain values: they travel to other processes
        local_inline = args.engine == "local" and workers == 1
        for job in jobs:
            job.update(options=plain, model=model, out=str(out))
            job["threads"] = args.threads if local_inline else threads
        return _run(args, jobs, images, skipped, failures, manifest, workers, threads, out)
    finally:
        if started_ray:
            batch.need_ray().shutdown()


def _run(args, jobs, images, skipped, failures, manifest, workers, threads, out) -> int:
    from tqdm import tqdm

    from ..io.outputs import display_name
    from ..jobs import batch

    for f in failures:
        batch.log(f"aerialseg: error: {f}")
    done = kept = pixels = 0
    start = time.perf_counter()
    desc = f"segment-batch {args.engine} {workers}x{threads}"
    quiet = True if args.quiet else None  # None: tqdm shows bars only on a terminal
    bar = tqdm(total=len(jobs), unit="img", desc=desc, disable=quiet)

    def on_start(job):
        fp = batch.fingerprint(Path(job["input"]).absolute())
        manifest.update(job["name"], status="running", outputs=[], error=None, **fp)

    with bar:
        results = batch.run_jobs(segment_job, jobs, args.engine, workers, args.address, on_start)
        for job, result in results:
            if result["status"] == "failed":
                failures.append(result["error"])
                batch.log(f"aerialseg: error: {result['error']}")
                manifest.update(job["name"], status="failed", error=result["error"])
            else:
                done += result["status"] == "done"
                kept += result["status"] == "kept"
                pixels += result["pixels"]
                for note in result["notes"]:
                    batch.log(f"aerialseg: note: {note}")
                if result["warning"]:
                    batch.log(f"{display_name(job['input'])}: warning: {result['warning']}")
                entry = {k: result[k] for k in ("outputs", "pixels", "seconds")}
                manifest.update(job["name"], status="done", error=None, **entry)
            bar.set_postfix_str(f"{pixels / 1e6 / (time.perf_counter() - start):.2f} MP/s")
            bar.update()
    seconds = time.perf_counter() - start
    print(
        f"segmented {done} of {len(images)} inputs in {seconds:.1f} s "
        f"({pixels / 1e6 / max(seconds, 1e-9):.2f} MP/s; {args.engine} engine, {workers} "
        f"worker{'s' * (workers != 1)} x {threads} thread{'s' * (threads != 1)}) -> {out}/ "
        f"(manifest: {batch.MANIFEST})"
    )
    if skipped + kept:
        print(f"kept {skipped + kept} complete from an earlier run (--overwrite redoes them)")
    return common.report_failures(failures)


def _options(args, seg) -> dict:
    """What the outputs depend on, for the manifest: the output flags and the model file."""
    from ..inference.segmenter import DEFAULT_MODEL
    from ..jobs.batch import fingerprint

    options = {k: getattr(args, k) for k in OUTPUT_OPTIONS}
    options["scale"] = options.pop("stretch")  # its key in the manifests of earlier runs
    model = Path(args.model) if args.model else DEFAULT_MODEL
    options["model"] = {**fingerprint(model), "name": seg.name}
    if args.classes:  # another legend, other labels and colours: the outputs are redone
        options["classes"] = seg.classes.to_dict()
    return options


def add_segment_batch(sub, help: str) -> None:
    g = common.subcommand(
        sub,
        "segment-batch",
        cmd_segment_batch,
        help,
        "Segment many images or GIS rasters into one folder, one job per input, on several "
        "local processes or a Ray cluster. The outputs are those of `segment` for each input. "
        "A manifest in the folder (segment-batch.json) lets a rerun skip what is complete "
        "and redo what was cut off or failed.",
    )
    g.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: processes on this machine; ray: Ray tasks (needs the distributed extra) "
        "(default: local)",
    )
    g.add_argument(
        "--address",
        metavar="ray://HOST:PORT",
        help="the Ray cluster to run on (default: a Ray started on this machine); the inputs "
        "and --out must be on storage every node sees, at the same paths",
    )
    g.add_argument(
        "--workers",
        type=common.number(int, 1),
        metavar="N",
        help="inputs segmented at once (default: local 1, ray the cluster's CPUs)",
    )
    g.add_argument(
        "--threads",
        type=common.number(int, 1),
        metavar="T",
        help="torch threads per worker, and CPUs each Ray task reserves (default: the CPUs "
        "shared out between the workers)",
    )
    add_segment_options(g)


PARSERS = {"segment-batch": add_segment_batch}
