"""What folding the EfficientNet encoder's batch norms into its convolutions saves.

``Segmenter`` folds every conv -> batch-norm pair of its private copy of the model
(models.base.fold_batchnorm). The U-Net decoder's pairs always were; the encoder's (named
attributes of EfficientNet's blocks, ``conv_bn_pairs``) were not. This times both, in
alternating rounds in one process, on a 1024 x 1024 crop of a Tile 7 image (random pixels
without the dataset), and compares each side's probabilities with fp32's: in fp32 folding
changes nothing (1e-5); in bf16 both sides round differently, so the check is that the folded
side is no further from fp32 than the unfolded one.

    python benchmarks/fold_speed.py [--model PATH] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from aerialseg.inference.segmenter import load_model
from aerialseg.models.efficientnet import EfficientUNet, MBConv
from segment_speed import test_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a unet-effl0 checkpoint (default: bundled)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rgb, what = test_image()
    folded = load_model(args.model)
    saved = MBConv.conv_bn_pairs, EfficientUNet.conv_bn_pairs
    MBConv.conv_bn_pairs = EfficientUNet.conv_bn_pairs = ()  # as before: decoder pairs only
    try:
        decoder_only = load_model(args.model)
    finally:
        MBConv.conv_bn_pairs, EfficientUNet.conv_bn_pairs = saved
    sides = {"decoder folded": decoder_only, "encoder too": folded}
    for seg in sides.values():
        seg.segment(rgb[:256, :256])  # warm-up: oneDNN picks its kernels on first use
    wall = {k: [] for k in sides}
    cpu = {k: [] for k in sides}
    for _ in range(args.rounds):
        for name, seg in sides.items():
            w0, c0 = time.perf_counter(), time.process_time()
            seg.predict_proba(rgb)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    exact = load_model(args.model, precision="fp32").predict_proba(rgb)
    off = {k: seg.predict_proba(rgb) for k, seg in sides.items()}
    print(f"1024x1024 ({what}), {folded.name}, {args.threads} thread(s), {folded.precision}")
    for name in sides:
        print(
            f"  {name:15s} wall {statistics.median(wall[name]):.3f} s, "
            f"CPU {statistics.median(cpu[name]):.3f} s (median of {args.rounds}); against "
            f"fp32: mean |probability difference| {np.abs(off[name] - exact).mean():.1e}, "
            f"labels equal {(off[name].argmax(-1) == exact.argmax(-1)).mean():.2%}"
        )
    ratios = [a / b for a, b in zip(cpu["decoder folded"], cpu["encoder too"])]
    print(
        f"  speed-up in CPU time: {statistics.median(ratios):.2f}x (paired rounds, "
        f"{min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
