"""int8 (onnxruntime, static QDQ) against today's fp32 and bf16 paths, on this CPU.

Figures it makes:
- seconds to segment a 1024 x 1024 image (a crop of Tile 7's first image, random pixels
  without the data), without and with 8x TTA, for PyTorch fp32, PyTorch bf16, onnxruntime fp32
  (``--runtime onnx``) and int8 (``--precision int8``): setups alternate round by round in one
  process, the minimum of ``--rounds`` is printed, with each one's ratio to fp32 and to bf16;
- with ``--accuracy`` (slower): on the bundled model's held-out images of Tile 7, whole
  images as ``aerialseg segment`` windows them, no TTA: the share of labels equal to fp32's and
  the pixel accuracy against the reference masks, per precision.

    python benchmarks/int8_speed.py [--model PATH] [--rounds 3] [--threads 2] [--accuracy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aerialseg.inference.int8 import load_int8
from aerialseg.inference.segmenter import DEFAULT_MODEL, Segmenter, load_segmenter

try:  # run as a script from the repository root or from benchmarks/
    from onnx_speed import onnx_segmenter
    from segment_speed import test_image
except ImportError:
    from benchmarks.onnx_speed import onnx_segmenter
    from benchmarks.segment_speed import test_image


def setups(model: str | None, threads: int) -> dict:
    return {
        "fp32": load_segmenter(model, precision="fp32", device="cpu"),
        "bf16": load_segmenter(model, precision="bf16", device="cpu"),
        "onnx fp32": onnx_segmenter(model, threads),
        "int8": Segmenter(*load_int8(model or DEFAULT_MODEL, threads=threads)),
    }


def speed(segs: dict, rgb: np.ndarray, rounds: int, tta: bool) -> dict[str, float]:
    """The minimum over ``rounds`` of each setup's seconds, setups interleaved per round."""
    times: dict[str, list[float]] = {k: [] for k in segs}
    for seg in segs.values():
        seg.segment(rgb[:256, :256], tta=False)  # warm-up
    for _ in range(rounds):
        for name, seg in segs.items():
            t0 = time.perf_counter()
            seg.segment(rgb, tta=tta)
            times[name].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def accuracy(segs: dict, root: str) -> None:
    from aerialseg.classes import DUBAI
    from aerialseg.data.segmentation import find_pairs, load_sample

    held = set(segs["fp32"].meta.get("val_images") or ())
    pairs = [p for p in find_pairs(root) if p.group == "Tile 7" and (not held or p.id in held)]
    if not pairs:
        print("no held-out Tile 7 images under", root)
        return
    equal = {k: 0 for k in segs}
    right = {k: 0 for k in segs}
    total = scored = 0
    for p in pairs:
        s = load_sample(p, DUBAI)
        labels = {k: seg.segment(s.image) for k, seg in segs.items()}
        known = s.labels < len(DUBAI)  # unlabelled pixels are not scored
        total += labels["fp32"].size
        scored += int(known.sum())
        for k, lab in labels.items():
            equal[k] += int((lab == labels["fp32"]).sum())
            right[k] += int((lab == s.labels)[known].sum())
    print(f"\nheld-out Tile 7 ({len(pairs)} images, whole, no TTA):")
    print(f"{'':12}{'labels = fp32':>15}{'pixel accuracy':>16}")
    for k in segs:
        print(f"{k:12}{equal[k] / total:>15.4f}{right[k] / scored:>16.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: bundled)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="for PyTorch and onnxruntime alike")
    ap.add_argument("--accuracy", action="store_true", help="also agreement/accuracy (slow)")
    ap.add_argument("--data", help="the Dubai dataset (default: $AERIALSEG_DATA)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rgb, what = test_image()
    segs = setups(args.model, args.threads)
    print(f"1024 x 1024 ({what}), {args.threads} threads, min of {args.rounds} rounds:")
    print(f"{'':12}{'seconds':>9}{'TTA x8':>9}{'/ fp32':>8}{'/ bf16':>8}{'TTA / bf16':>12}")
    plain = speed(segs, rgb, args.rounds, tta=False)
    tta = speed(segs, rgb, args.rounds, tta=True)
    for k in segs:
        ratios = (plain[k] / plain["fp32"], plain[k] / plain["bf16"], tta[k] / tta["bf16"])
        print(f"{k:12}{plain[k]:>9.3f}{tta[k]:>9.3f}{ratios[0]:>8.2f}{ratios[1]:>8.2f}", end="")
        print(f"{ratios[2]:>12.2f}")
    if args.accuracy:
        from aerialseg.config import data_root

        accuracy(segs, data_root(args.data))


if __name__ == "__main__":
    main()
