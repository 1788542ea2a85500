"""Absolute speed on one device: training patches/s of the default U-Net and seconds to segment
a 1024 x 1024 image, plus how well that device's labels agree with the CPU's fp32 ones.

Training times aerialseg's own step (``train_step``: autocast, channels_last, on the device)
on batches of 256 x 256 patches already on the device; segmenting times ``Segmenter.segment``
(blended windows, results back in CPU memory), synchronised. Medians of ``--rounds``.

    python benchmarks/device_speed.py --device cuda [--rounds 5] [--steps 20]

Figure: the H100 rows (training patches/s, 1024² segment time, CUDA vs CPU label agreement),
quoted in docs/results.md (GPUs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from aerialseg.classes import DUBAI
from aerialseg.config import data_root
from aerialseg.data.segmentation import Batches, load_dataset
from aerialseg.inference.segmenter import load_segmenter
from aerialseg.io.images import read_image
from aerialseg.losses import make_loss
from aerialseg.models import create_model
from aerialseg.runtime import grad_scaler, prepare, resolve_device, resolve_precision
from aerialseg.training.segmentation import train_step

try:  # run as a script from the repository root or from benchmarks/
    from segment_speed import test_image
except ImportError:
    from benchmarks.segment_speed import test_image


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def patches(batch_size: int, n: int, device: str):
    root = data_root(required=False)
    if root:
        samples, source = load_dataset(root, DUBAI, 256), f"real patches from {root}"
        b = Batches(samples, 256, batch_size, patches_per_epoch=batch_size * n, jitter=0.1)
        data = list(b.epoch(np.random.default_rng(0)))
    else:
        g = torch.Generator().manual_seed(0)
        source = "random data"
        data = [
            (torch.rand(batch_size, 3, 256, 256, generator=g) * 255,
             torch.randint(0, 6, (batch_size, 256, 256), generator=g))
            for _ in range(n)
        ]  # fmt: skip
    return source, [(x.to(device), y.to(device)) for x, y in data]


def training_rate(device, precision, data, rounds) -> list[float]:
    torch.manual_seed(0)
    model = prepare(create_model("unet"), precision, device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn, scaler = make_loss("dice+focal"), grad_scaler(precision, device)
    for x, y in data[:3]:  # warm-up: cuDNN / oneDNN pick their kernels
        train_step(model, opt, loss_fn, x, y, precision, scaler)
    rates = []
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        for x, y in data:
            train_step(model, opt, loss_fn, x, y, precision, scaler)
        sync(device)
        rates.append(sum(len(x) for x, _ in data) / (time.perf_counter() - t0))
    return rates


def segment_seconds(seg, rgb, rounds: int, tta: bool = False):
    seg.segment(rgb, tta)  # warm-up at this size: kernel choice and memory pools
    times, labels = [], None
    for _ in range(rounds):
        sync(seg.device)
        t0 = time.perf_counter()
        labels = seg.segment(rgb, tta)  # ends on the CPU: includes the copy back
        times.append(time.perf_counter() - t0)
    return statistics.median(times), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="training steps per round")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")  # fmt: skip

    source, data = patches(args.batch_size, args.steps, device)
    precisions = [resolve_precision("auto", device)] + ["fp32"] * (
        resolve_precision("auto", device) != "fp32"
    )
    for precision in precisions:
        rates = training_rate(device, precision, data, args.rounds)
        print(
            f"  train unet {precision:<5} batch {args.batch_size} of 256x256: "
            f"{statistics.median(rates):8.1f} patches/s (median of {args.rounds} x "
            f"{args.steps} steps; {source})"
        )

    rgb, what = test_image()
    seg = load_segmenter(device=device)
    t, labels = segment_seconds(seg, rgb, args.rounds)
    t_tta, _ = segment_seconds(seg, rgb, max(1, args.rounds // 2), tta=True)
    print(f"  segment 1024x1024 ({what}), {seg.precision}: {t:.3f} s, with 8x TTA {t_tta:.3f} s "
          f"(medians)")  # fmt: skip
    if device != "cpu":
        cpu = load_segmenter(precision="fp32", device="cpu").segment(rgb)
        print(f"  labels equal to the CPU's fp32 labels: {float((labels == cpu).mean()):.4%}")
        agreement(device)


def agreement(device: str) -> None:
    """Labels of the whole Tile 7 image on ``device`` at each precision against the CPU's."""
    root = data_root(required=False)
    path = f"{root}/Tile 7/images/image_part_001.jpg"
    if not root or not Path(path).is_file():
        return
    rgb = read_image(path)
    cpu = {p: load_segmenter(precision=p, device="cpu").segment(rgb) for p in ("fp32", "bf16")}
    kinds = ["fp32", "bf16"] + ["fp16"] * device.startswith("cuda")
    print(f"  whole Tile 7 image ({rgb.shape[1]}x{rgb.shape[0]}), share of equal labels:")
    for p in kinds:
        labels = load_segmenter(precision=p, device=device).segment(rgb)
        print(f"    {device} {p}: = cpu fp32 {float((labels == cpu['fp32']).mean()):.4%}, "
              f"= cpu bf16 {float((labels == cpu['bf16']).mean()):.4%}")  # fmt: skip
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        labels = load_segmenter(precision="fp32", device=device).segment(rgb)
        print(
            f"    {device} fp32, TF32 off: = cpu fp32 {float((labels == cpu['fp32']).mean()):.4%}"
        )
    same = float((cpu["bf16"] == cpu["fp32"]).mean())
    print(f"    cpu bf16 = cpu fp32 {same:.4%}")


if __name__ == "__main__":
    main()
