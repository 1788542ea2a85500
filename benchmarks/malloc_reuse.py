"""What glibc's handling of freed memory costs: aerialseg with and without reuse_freed_memory.

The ``aerialseg`` command calls :func:`aerialseg.runtime.reuse_freed_memory` (glibc keeps freed
blocks instead of unmapping them, so big tensors do not come back as fresh, kernel-zeroed
pages). It is a process-wide setting, so each side runs in its own child process, the two
alternating over ``--rounds``. Each child times, after a warm-up: segmenting the 1024² crop of
a Tile 7 image and the whole 1817 x 2061 image (bundled model unless --model, no TTA), and
training steps of unet-effl0 (batch 16 of 256², random pixels: the cost does not depend on
them). Reported: medians of wall and CPU seconds (this process, all threads), peak RSS, and
the ratio default / reuse.

    python benchmarks/malloc_reuse.py [--model PATH] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def child(reuse: bool, model: str | None, threads: int, steps: int) -> dict:
    import numpy as np
    import torch

    from aerialseg.inference.segmenter import load_model
    from aerialseg.losses import make_loss
    from aerialseg.models import create_model
    from aerialseg.runtime import prepare, resolve_precision, reuse_freed_memory
    from aerialseg.training.segmentation import train_step

    try:  # run as a script from the repository root or from benchmarks/
        from image_speed import default_image
    except ImportError:
        from benchmarks.image_speed import default_image
    from aerialseg.io.images import read_image

    if reuse and not reuse_freed_memory():
        raise SystemExit("reuse_freed_memory() does nothing here (not glibc)")
    torch.set_num_threads(threads)
    seg = load_model(model)
    full = read_image(default_image())
    crop = full[:1024, :1024].copy()
    precision = resolve_precision("auto")
    torch.manual_seed(0)
    net = prepare(create_model("unet-effl0"), precision).train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss = make_loss("dice+focal")
    x = torch.rand(16, 3, 256, 256) * 255
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 6, (16, 256, 256))).long()
    jobs = {
        "segment 1024² crop": lambda: seg.segment(crop),
        "segment 1817x2061": lambda: seg.segment(full),
        f"train unet-effl0, {steps} steps of 16x256²": lambda: [
            train_step(net, opt, loss, x, y, precision) for _ in range(steps)
        ],
    }
    out = {}
    for name, job in jobs.items():
        job()  # warm-up: oneDNN kernels for each shape
        w0, c0 = time.perf_counter(), time.process_time()
        job()
        out[name] = (time.perf_counter() - w0, time.process_time() - c0)
    out["peak RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: bundled)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2, help="training steps timed")
    ap.add_argument("--child", choices=("reuse", "default"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "reuse", args.model, args.threads, args.steps)))
        return
    runs: dict[str, list[dict]] = {"default": [], "reuse": []}
    load0 = os.getloadavg()
    for r in range(args.rounds):
        for side in runs:
            cmd = [sys.executable, __file__, "--child", side, "--threads", str(args.threads)]
            cmd += ["--steps", str(args.steps)] + (["--model", args.model] if args.model else [])
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[side].append(json.loads(done.stdout.splitlines()[-1]))
            print(f"round {r + 1} {side}: {runs[side][-1]}", flush=True)
    load1 = os.getloadavg()
    print(
        f"\n{args.threads} threads; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at "
        f"the end; medians of {args.rounds} rounds (wall / CPU seconds)"
    )
    for key in runs["default"][0]:
        med = {}
        for side, rows in runs.items():
            vals = [row[key] for row in rows]
            med[side] = (
                [statistics.median(v) for v in zip(*vals)]
                if key != "peak RSS MiB"
                else [statistics.median(vals)]
            )
        text = "  ".join(
            f"{side} " + " / ".join(f"{v:.2f}" for v in vals) for side, vals in med.items()
        )
        ratio = " / ".join(f"{d / n:.2f}x" for d, n in zip(med["default"], med["reuse"]))
        print(f"  {key:<36} {text}   default/reuse {ratio}")


if __name__ == "__main__":
    main()
