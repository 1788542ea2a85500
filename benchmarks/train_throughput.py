"""Training throughput of the seed U-Net: aerialseg's step vs a plain fp32 PyTorch loop.

Both train the same network (``unet-seed``) with the same loss on the same batches; the
baseline is what a straightforward port of the seed does (fp32, contiguous NCHW). The two are
timed in alternating rounds within one process, so machine noise hits both alike.

    python benchmarks/train_throughput.py [--rounds 3] [--steps 6] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from aerialseg.classes import DUBAI
from aerialseg.data import Batches, load_dataset
from aerialseg.infer import resolve_precision
from aerialseg.losses import make_loss
from aerialseg.models import create_model
from aerialseg.train import train_step


def batches(batch_size: int, n: int):
    root = os.environ.get("AERIALSEG_DATA", "../shared/datasets/dubai-aerial")
    try:
        samples = load_dataset(root, DUBAI, 256)
        source = f"real patches from {root}"
    except Exception:  # noqa: BLE001 - no dataset: random pixels cost the same to train on
        rng = np.random.default_rng(0)
        return "random data", [
            (
                torch.rand(batch_size, 3, 256, 256) * 255,
                torch.from_numpy(rng.integers(0, 6, (batch_size, 256, 256))).long(),
            )
            for _ in range(n)
        ]
    b = Batches(samples, 256, batch_size, patches_per_epoch=batch_size * n, jitter=0.1)
    return source, list(b.epoch(np.random.default_rng(0)))


def time_steps(model, opt, loss_fn, data, precision) -> float:
    t0 = time.perf_counter()
    for x, y in data:
        train_step(model, opt, loss_fn, x, y, precision)
    return sum(len(x) for x, _ in data) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    source, data = batches(args.batch_size, args.steps)
    ours = resolve_precision("auto")
    loss_fn = make_loss("dice+focal")
    runs = {}
    for name, precision in (("plain fp32", "fp32"), (f"aerialseg ({ours})", ours)):
        torch.manual_seed(0)
        model = create_model("unet-seed", normalization={"kind": "minmax"})
        if precision == "bf16":
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        time_steps(model, opt, loss_fn, data[:1], precision)  # warm-up (oneDNN kernel choice)
        runs[name] = (model, opt, precision, [])
    for r in range(args.rounds):
        for name, (model, opt, precision, rates) in runs.items():
            rates.append(time_steps(model, opt, loss_fn, data, precision))
            print(f"round {r + 1}: {name:<20} {rates[-1]:6.1f} patches/s", flush=True)
    med = {name: statistics.median(v[3]) for name, v in runs.items()}
    base, fast = med["plain fp32"], med[f"aerialseg ({ours})"]
    print(
        f"\nseed U-Net, batch {args.batch_size} of 256x256, {source}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, rate in med.items():
        print(f"  {name:<20} {rate:6.1f} patches/s (median of {args.rounds})")
    print(f"  speed-up: {fast / base:.2f}x")


if __name__ == "__main__":
    main()
