"""Training throughput of the seed U-Net: aerialseg's step vs a plain fp32 PyTorch loop.

All rows train the same network (``unet-seed``: same layers, same initial weights) with Dice +
focal loss on the same batches. The baseline is what a straightforward port of the seed does:
fp32, contiguous NCHW, ``nn.Dropout``, and the loss written with a one-hot tensor. aerialseg
adds bf16 autocast + channels_last (where the CPU has native bf16), a cheaper dropout mask and
a loss without one-hot copies; its fp32 row shows what the latter two give alone. Rows are
timed in alternating rounds within one process, so machine noise hits all alike.

    python benchmarks/train_throughput.py [--rounds 3] [--steps 6] [--batch-size 16]

Figure: no figure the docs quote today: its table (aerialseg's step vs a plain PyTorch port) is
history in docs/experiments.md, superseded by keras_anchor.py. Kept because keras_anchor.py
imports its batches, plain model and loss.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from aerialseg.classes import DUBAI, IGNORE_INDEX
from aerialseg.config import data_root
from aerialseg.data.segmentation import Batches, load_dataset
from aerialseg.losses import make_loss
from aerialseg.models import create_model
from aerialseg.models.unet import Dropout
from aerialseg.runtime import resolve_precision
from aerialseg.training.segmentation import train_step


def batches(batch_size: int, n: int):
    root = data_root(required=False)
    if not root:  # no dataset: random pixels cost the same to train on
        rng = np.random.default_rng(0)
        return "random data", [
            (
                torch.rand(batch_size, 3, 256, 256) * 255,
                torch.from_numpy(rng.integers(0, 6, (batch_size, 256, 256))).long(),
            )
            for _ in range(n)
        ]
    samples, source = load_dataset(root, DUBAI, 256), f"real patches from {root}"
    b = Batches(samples, 256, batch_size, patches_per_epoch=batch_size * n, jitter=0.1)
    return source, list(b.epoch(np.random.default_rng(0)))


def plain_loss(logits, target, alpha=0.25, gamma=2.0, smooth=1e-5):
    """Dice + focal as a direct port of segmentation_models' Keras losses would write it."""
    probs = logits.float().softmax(1)
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), probs.shape[1])
    onehot = onehot.permute(0, 3, 1, 2).float() * valid
    probs = probs * valid
    inter = (probs * onehot).sum((0, 2, 3))
    dice = 1 - ((2 * inter + smooth) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + smooth))
    focal = -onehot * alpha * (1 - probs) ** gamma * torch.log(probs.clamp_min(1e-7))
    return dice.mean() + focal.sum() / valid.sum() / probs.shape[1]


def plain_model():
    """unet-seed with torch's own nn.Dropout, as a plain port would have it."""
    model = create_model("unet-seed", normalization={"kind": "minmax"})
    for block in model.modules():
        for name, child in block.named_children():
            if isinstance(child, Dropout):
                setattr(block, name, torch.nn.Dropout(child.p))
    return model


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
    setups = {
        "plain fp32": (plain_model, plain_loss, "fp32"),
        "aerialseg fp32": (
            lambda: create_model("unet-seed", normalization={"kind": "minmax"}),
            make_loss("dice+focal"),
            "fp32",
        ),
    }
    if ours != "fp32":
        setups[f"aerialseg {ours}"] = (setups["aerialseg fp32"][0], make_loss("dice+focal"), ours)
    runs = {}
    for name, (build, loss_fn, precision) in setups.items():
        torch.manual_seed(0)
        model = build()
        if precision == "bf16":
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        time_steps(model, opt, loss_fn, data[:1], precision)  # warm-up (oneDNN kernel choice)
        runs[name] = (model, opt, loss_fn, precision, [])
    for r in range(args.rounds):
        for name, (model, opt, loss_fn, precision, rates) in runs.items():
            rates.append(time_steps(model, opt, loss_fn, data, precision))
            print(f"round {r + 1}: {name:<16} {rates[-1]:6.1f} patches/s", flush=True)
    med = {name: statistics.median(v[-1]) for name, v in runs.items()}
    print(
        f"\nseed U-Net, batch {args.batch_size} of 256x256, {source}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, rate in med.items():
        print(
            f"  {name:<16} {rate:6.1f} patches/s  {rate / med['plain fp32']:4.2f}x "
            f"(median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
