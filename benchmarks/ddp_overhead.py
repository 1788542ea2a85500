"""The cost of DDP on one machine: training samples/s of 1 process with T threads against N
processes (gloo) with T/N threads each, the same total threads and the same global batch.

Each setup runs in fresh processes (started by torchrun for N > 1) that time aerialseg's own
training step on the default U-Net, through the DDP wrapper and process group the training
loop uses; the setups alternate over ``--rounds`` and the medians are reported.

    python benchmarks/ddp_overhead.py [--nproc 2] [--threads ALL] [--batch-size 16]

Figure: the DDP-overhead rows (1 process x T threads vs N x T/N), quoted in docs/results.md
(scaling out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def worker(args) -> None:
    import numpy as np
    import torch

    from aerialseg.classes import DUBAI
    from aerialseg.config import data_root
    from aerialseg.data.segmentation import Batches, load_dataset
    from aerialseg.losses import make_loss
    from aerialseg.models import create_model
    from aerialseg.runtime import prepare, resolve_precision
    from aerialseg.training import distributed
    from aerialseg.training.segmentation import train_step

    torch.set_num_threads(args.threads)
    ctx = distributed.setup("cpu")
    per_rank = args.batch_size // ctx.world_size
    root = data_root(required=False)
    rng = np.random.default_rng([0, ctx.rank])
    if root:
        samples = load_dataset(root, DUBAI, 256)
        b = Batches(samples, 256, per_rank, patches_per_epoch=per_rank * (args.steps + 2))
        data = list(b.epoch(rng))
    else:
        data = [
            (torch.from_numpy(rng.uniform(0, 255, (per_rank, 3, 256, 256))).float(),
             torch.from_numpy(rng.integers(0, 6, (per_rank, 256, 256))))
            for _ in range(args.steps + 2)
        ]  # fmt: skip
    precision = resolve_precision("auto", "cpu")
    torch.manual_seed(0)
    model = prepare(create_model("unet"), precision).train()
    net = distributed.wrap(model, ctx)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = make_loss("dice+focal")
    for x, y in data[:2]:  # warm-up
        train_step(net, opt, loss_fn, x, y, precision)
    ctx.barrier()
    t0 = time.perf_counter()
    for x, y in data[2:]:
        train_step(net, opt, loss_fn, x, y, precision)
    ctx.barrier()
    seconds = ctx.from_main(time.perf_counter() - t0)
    if ctx.main:
        print(f"RESULT {per_rank * ctx.world_size * args.steps / seconds:.3f} {precision}")
    del net
    distributed.teardown(ctx)


def run(nproc: int, threads: int, args) -> tuple[float, str]:
    me = [os.path.abspath(__file__), "--worker", "--threads", str(threads),
          "--steps", str(args.steps), "--batch-size", str(args.batch_size)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nproc == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", *me]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    rate, precision = line.split()[1:]
    return float(rate), precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="total threads")
    ap.add_argument("--batch-size", type=int, default=16, help="global batch")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    n, t = args.nproc, args.threads
    setups = {f"1 process x {t} threads": (1, t), f"{n} processes x {t // n} threads": (n, t // n)}
    rates: dict[str, list[float]] = {k: [] for k in setups}
    for r in range(args.rounds):
        for name, (nproc, threads) in setups.items():
            rate, precision = run(nproc, threads, args)
            rates[name].append(rate)
            print(f"round {r + 1}: {name:<24} {rate:6.2f} samples/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = next(iter(med.values()))
    print(f"\nunet, global batch {args.batch_size} of 256x256, {precision}, gloo, "
          f"{args.steps} timed steps, median of {args.rounds}:")  # fmt: skip
    for name, rate in med.items():
        print(f"  {name:<24} {rate:6.2f} samples/s  {rate / base:4.2f}x")


if __name__ == "__main__":
    main()
