"""``segment-batch`` throughput: the local engine with one worker (what ``segment`` does: one
process, all cores), the local engine with N worker processes, and Ray with N workers (a
local Ray started by the command), on the same synthetic GeoTIFFs with the bundled model.

Each setup is a fresh ``aerialseg segment-batch`` process into an empty folder; the setups
alternate over ``--rounds`` and the medians are reported: megapixels/s over the whole
command (start-up, Ray's included) and as the command reports it (from the first job on),
with ratios against the one-worker run of the same round. The labels of every setup are
checked to be byte-identical.

    python benchmarks/segment_batch.py [--rasters 8] [--size 768] [--workers 2] [--rounds 2]

Figure: the segment-batch throughput rows (local and Ray workers), quoted in docs/results.md
(scaling out).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))


def make_inputs(folder: Path, n: int, size: int) -> None:
    from tests.geo_helpers import scene, write_raster

    folder.mkdir(parents=True)
    for i in range(n):
        write_raster(folder / f"r{i:02d}.tif", scene(size, size, seed=i)[0])


def run(inputs: Path, out: Path, engine: str, workers: int) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "aerialseg", "segment-batch", str(inputs), "--out", str(out)]
    cmd += ["--engine", engine, "--workers", str(workers), "-q"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    reported = float(re.search(r"\(([\d.]+) MP/s", r.stdout).group(1))
    return wall, reported


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rasters", type=int, default=8)
    p.add_argument("--size", type=int, default=768, help="side of each square raster")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    setups = [("local", 1), ("local", args.workers), ("ray", args.workers)]
    mp = args.rasters * args.size**2 / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "in", args.rasters, args.size)
        results = {s: [] for s in setups}
        for r in range(args.rounds):
            for engine, workers in setups:
                out = tmp / f"{engine}{workers}-{r}"
                wall, reported = run(tmp / "in", out, engine, workers)
                results[engine, workers].append((mp / wall, reported))
                print(f"round {r + 1} {engine} x{workers}: {wall:.1f} s", flush=True)
        ref = tmp / f"local1-{args.rounds - 1}"
        for engine, workers in setups:
            out = tmp / f"{engine}{workers}-{args.rounds - 1}"
            for f in sorted(ref.glob("*_labels.tif")):
                if (out / f.name).read_bytes() != f.read_bytes():
                    sys.exit(f"{out / f.name} differs from the one-worker run's")
            shutil.rmtree(out)
    print(f"\n{args.rasters} rasters of {args.size}x{args.size} ({mp:.2f} MP), bundled model, "
          f"medians of {args.rounds}; labels byte-identical across setups")  # fmt: skip
    base_wall = statistics.median(w for w, _ in results["local", 1])
    base_rep = statistics.median(r for _, r in results["local", 1])
    for engine, workers in setups:
        wall = statistics.median(w for w, _ in results[engine, workers])
        rep = statistics.median(r for _, r in results[engine, workers])
        print(
            f"{engine:5s} {workers} worker{'s' * (workers != 1)}: whole command "
            f"{wall:.3f} MP/s ({wall / base_wall:.2f}x), jobs only {rep:.3f} MP/s "
            f"({rep / base_rep:.2f}x); {args.rasters * wall / mp:.2f} rasters/s"
        )


if __name__ == "__main__":
    main()
