"""Where a training step's CPU time goes: torch.profiler over `aerialseg train`'s step.

Builds the model, optimiser and loss as keras_anchor.py does (what ``aerialseg train --arch
ARCH`` builds), runs two warm-up steps, then profiles ``--steps`` steps of batches of 16 x 256²
and prints the operators by self CPU time, plus each one's share of the total. The share is
the figure to trust on a shared machine; absolute times stretch with the load.

    python benchmarks/profile_step.py [--arch unet-effl0] [--steps 3] [--threads 1] [--shapes]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

try:  # run as a script from the repository root or from benchmarks/
    from keras_anchor import aerialseg_setup, samples_of
    from train_throughput import batches
except ImportError:
    from benchmarks.keras_anchor import aerialseg_setup, samples_of
    from benchmarks.train_throughput import batches

from aerialseg.training.segmentation import train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="unet-effl0")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--shapes", action="store_true", help="also group by input shapes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source, data = batches(16, args.steps + 2)
    model, opt, loss_fn, precision = aerialseg_setup(args.arch, samples_of(data[0]))
    for x, y in data[:2]:  # warm-up: oneDNN picks and caches its kernels
        train_step(model, opt, loss_fn, x, y, precision)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        for x, y in data[2:]:
            train_step(model, opt, loss_fn, x, y, precision)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.arch}, {args.steps} steps of 16 x 256², {precision}, {args.threads} thread(s), "
          f"{source}: {total / 1e6 / args.steps:.3f} CPU-s per step (profiled)")  # fmt: skip
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.rows]:
        print(f"  {e.self_cpu_time_total / total:6.1%}  {e.key}")
    if args.shapes:
        print(prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=args.rows))  # fmt: skip


if __name__ == "__main__":
    main()
