"""Cost per megapixel of a full-size image against a 1024 x 1024 crop, with and without 8x TTA.

Issue 13 asks that a full-size image (Tile 7's 1817 x 2061) cost within 15 % per megapixel
of a 1024² crop of it. For each model, in the same run and in alternating rounds:

- ``before``: the window plan of main before this script (1024² windows strided from the
  top-left with the last one flush with the end, two windows per forward pass, a single pass
  up to two windows' area), re-created here and run through the same ``predict_bands``;
- ``now``: the Segmenter's default tiling (windows sized to the image, one per pass);
- ``window=N`` for each of ``--windows``: the same with another largest window side.

Each row gives the windows the plan runs, the pixels the network sees per image pixel, and the
seconds of wall-clock and of CPU (this process) per image; the ratio is the full image's cost
per megapixel over the crop's, from medians. CPU seconds are steadier than wall ones on a
shared machine; with one thread they are the work itself. A round of every setup first, not
timed: oneDNN builds its kernels for each new input shape on first use. Freed memory is kept
for reuse, as the ``aerialseg`` command does (the measurement behind that: docs/experiments.md).

    python benchmarks/image_speed.py [--model PATH] [--compare PATH] [--rounds 3]
        [--threads N] [--windows 768,1152] [--no-tta] [--no-before]

Figure: the 1024² / full-image segmenting times (with and without 8x TTA) and the full/crop
cost per megapixel, quoted in docs/results.md (segmenting speed); the history in
docs/experiments.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from aerialseg.config import data_root
from aerialseg.inference.segmenter import load_segmenter, predict_bands
from aerialseg.inference.tiling import Tiling, strided
from aerialseg.io.images import read_image
from aerialseg.runtime import reuse_freed_memory


def before_plan(h: int, w: int, window: int = 1024, border: int = 32, batch: int = 2):
    """The plan main used before windows were sized to the image (as of 621798b)."""
    ph, pw = h + 2 * border, w + 2 * border
    if ph * pw <= batch * window**2 and max(ph, pw) <= 4 * window:
        return [0], [0], ph, pw, 0
    wh, ww, ramp = min(window, ph), min(window, pw), window // 8
    return strided(ph, wh, wh - ramp), strided(pw, ww, ww - ramp), wh, ww, ramp


class Setup:
    """One way of cutting images into windows: a tiling and, for ``before``, its own plan."""

    def __init__(self, name: str, tiling: Tiling, planner=None):
        self.name, self.tiling, self.planner = name, tiling, planner

    def plan(self, h: int, w: int):
        return self.planner(h, w) if self.planner else self.tiling.plan(h, w)

    def labels(self, seg, rgb: np.ndarray, tta: bool) -> np.ndarray:
        out = np.empty(rgb.shape[:2], np.uint8)
        bands = predict_bands(
            seg.model, rgb, seg.precision, self.tiling, tta, plan=self.plan(*rgb.shape[:2])
        )
        for y, band in bands:
            out[y : y + len(band)] = band.argmax(-1)
        return out

    def describe(self, h: int, w: int) -> str:
        rows, cols, wh, ww, _ = self.plan(h, w)
        seen = len(rows) * len(cols) * wh * ww / (h * w)
        return f"{len(rows)}x{len(cols)} windows of {wh}x{ww}, {seen:.2f}x the pixels"


def default_image() -> Path:
    root = data_root(required=False)
    path = Path(root or ".") / "Tile 7" / "images" / "image_part_001.jpg"
    if not path.is_file():
        raise SystemExit(f"needs the Dubai dataset (AERIALSEG_DATA) or --image: {path} not found")
    return path


def timed(fn, *args) -> tuple[float, float, object]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: bundled)")
    ap.add_argument("--compare", help="a second checkpoint, measured in the same rounds")
    ap.add_argument("--image", help="full-size image (default: Tile 7 image_part_001.jpg)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    ap.add_argument("--windows", default="", help="more largest window sides to try, e.g. 768")
    ap.add_argument("--no-tta", action="store_true", help="skip the 8x TTA rows")
    ap.add_argument("--no-before", action="store_true", help="skip the rows of the old plan")
    args = ap.parse_args()
    reuse_freed_memory()  # as the aerialseg command does (docs/experiments.md: freed memory)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = Path(args.image) if args.image else default_image()
    full = read_image(path)
    images = {"crop": full[:1024, :1024].copy(), "full": full}
    setups = [Setup("before", Tiling(batch_size=2), before_plan), Setup("now", Tiling())]
    setups = setups[1:] if args.no_before else setups
    setups += [Setup(f"window={n}", Tiling(window=int(n))) for n in args.windows.split(",") if n]
    names = [args.model, args.compare] if args.compare else [args.model]
    models = {n or "bundled": load_segmenter(n) for n in names}
    ttas = (False,) if args.no_tta else (False, True)
    keys = [(m, s, i, t) for m in models for s in range(len(setups)) for i in images for t in ttas]
    times: dict[tuple, list[tuple[float, float]]] = {k: [] for k in keys}
    labels: dict[tuple, np.ndarray] = {}
    load0 = os.getloadavg()
    for r in range(args.rounds + 1):  # round 0: warm-up, not timed
        for k in keys:
            m, s, i, t = k
            wall, cpu, out = timed(setups[s].labels, models[m], images[i], t)
            if r:
                times[k].append((wall, cpu))
                print(f"round {r}: {m} {setups[s].name} {i} tta={t}: {wall:.2f} s wall, "
                      f"{cpu:.2f} s CPU", flush=True)  # fmt: skip
            labels[k] = out
    load1 = os.getloadavg()
    h, w = full.shape[:2]
    print(
        f"\n{path.name} {w} x {h} and its top-left 1024² crop; {torch.get_num_threads()} "
        f"threads; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end; "
        f"min / median of {args.rounds} rounds"
    )
    for s in setups:
        print(f"  {s.name}: crop {s.describe(1024, 1024)}; full {s.describe(h, w)}")
    for m, seg in models.items():
        print(f"\nmodel {m} ({seg.model.config['name']}, {seg.precision})")
        for s, setup in enumerate(setups):
            for t in ttas:
                per_mp = {}
                for i, rgb in images.items():
                    walls, cpus = zip(*times[(m, s, i, t)])
                    mp = rgb.shape[0] * rgb.shape[1] / 1e6
                    per_mp[i] = statistics.median(walls) / mp, statistics.median(cpus) / mp
                    print(
                        f"  {setup.name:<12} {'8x TTA' if t else 'no TTA':<7} {i:<5} "
                        f"wall {min(walls):6.2f} / {statistics.median(walls):6.2f} s  "
                        f"CPU {min(cpus):6.2f} / {statistics.median(cpus):6.2f} s  "
                        f"median {per_mp[i][0]:.3f} s/MP wall, {per_mp[i][1]:.3f} CPU"
                    )
                print(
                    f"  {setup.name:<12} {'8x TTA' if t else 'no TTA':<7} full/crop per MP: "
                    f"**{per_mp['full'][0] / per_mp['crop'][0]:.2f}x** wall, "
                    f"{per_mp['full'][1] / per_mp['crop'][1]:.2f}x CPU"
                )
        for s in range(1, len(setups) if not args.no_before else 0):
            for t in ttas:
                same = (labels[(m, s, "full", t)] == labels[(m, 0, "full", t)]).mean()
                print(f"  labels of the full image, {setups[s].name} = before "
                      f"({'8x TTA' if t else 'no TTA'}): {same:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
