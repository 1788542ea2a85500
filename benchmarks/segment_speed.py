"""Segmenting a 1024 x 1024 image: aerialseg vs a faithful re-implementation of the seed.

The seed (following Vooban's Smoothly-Blend-Image-Patches) reflect-pads the image, makes the
8 rotations/mirrors of the whole padded image, predicts 256 x 256 windows at 50 % overlap one
at a time in fp32, weights each by a 2-D spline window, merges, un-rotates and averages.
Both sides use the same network (the bundled model unless --model), and are timed in
alternating rounds in one process.

    python benchmarks/segment_speed.py [--model PATH] [--rounds 3]

Figure: no figure the docs quote today: its own table (the seed's method re-implemented) is
history in docs/experiments.md. Kept because onnx_speed.py and device_speed.py import its
`test_image`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from aerialseg.config import data_root
from aerialseg.inference.segmenter import load_segmenter
from aerialseg.inference.tiling import spline_ramp


def seed_spline_window(size: int) -> np.ndarray:
    """Vooban's 2-D window: a squared-triangle spline, highest in the centre, summing to a
    constant at 50 % overlap."""
    half = spline_ramp(size // 2)
    w = np.concatenate([half, half[::-1]])
    return np.outer(w, w)


@torch.inference_mode()
def seed_predict(model, rgb: np.ndarray, window: int = 256) -> np.ndarray:
    """The seed's method, faithfully: fp32, one 256 window at a time, 50 % overlap, 8x TTA."""
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    aug = window // 2  # Vooban pads by window * (1 - 1/subdivisions)
    padded = np.pad(rgb, ((aug, aug), (aug, aug), (0, 0)), mode="reflect")
    spline = torch.from_numpy(seed_spline_window(window)).float()
    c = model.num_classes
    total = np.zeros((*padded.shape[:2], c), np.float32)
    for k in range(8):
        img = np.rot90(padded, k % 4)
        img = img[:, ::-1] if k >= 4 else img
        h, w = img.shape[:2]
        acc = torch.zeros(c, h, w)
        for y in range(0, h - window + 1, window // 2):
            for x in range(0, w - window + 1, window // 2):
                patch = torch.from_numpy(np.ascontiguousarray(img[y : y + window, x : x + window]))
                probs = model(patch.permute(2, 0, 1)[None].float()).softmax(1)[0]
                acc[:, y : y + window, x : x + window] += probs * spline
        out = acc.permute(1, 2, 0).numpy()  # the spline weights sum to a constant
        out = out[:, ::-1] if k >= 4 else out
        total += np.rot90(out, -(k % 4))
    return total[aug:-aug, aug:-aug] / 8


def test_image() -> tuple[np.ndarray, str]:
    root = data_root(required=False)
    path = Path(root or ".") / "Tile 7" / "images" / "image_part_001.jpg"
    if root and path.is_file():
        from aerialseg.io.images import read_image

        return read_image(path)[:1024, :1024].copy(), f"crop of {path.name} (Tile 7)"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8), "random pixels"


def timed(fn, rounds: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: bundled)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed-rounds", type=int, default=1, help="rounds of the slow seed method")
    args = ap.parse_args()
    rgb, what = test_image()
    seg = load_segmenter(args.model)
    seg.segment(rgb[:256, :256])  # warm-up: oneDNN picks its kernels on first use
    t_plain, labels = timed(lambda: seg.segment(rgb), args.rounds)
    t_tta, labels_tta = timed(lambda: seg.segment(rgb, tta=True), args.rounds)
    seed_model = load_segmenter(args.model, precision="fp32").model
    t_seed, probs_seed = timed(lambda: seed_predict(seed_model, rgb), args.seed_rounds)
    agree = float((probs_seed.argmax(-1) == labels_tta).mean())
    print(
        f"1024x1024 image ({what}), model {seg.name}, {torch.get_num_threads()} threads, "
        f"precision {seg.precision}"
    )
    print(f"  aerialseg, blended, no TTA      {t_plain:7.3f} s  (median of {args.rounds})")
    print(f"  aerialseg, blended, 8x TTA      {t_tta:7.3f} s  (median of {args.rounds})")
    print(f"  seed method (256/50%/8x, fp32)  {t_seed:7.3f} s  ({args.seed_rounds} run)")
    print(f"  speed-up with TTA: {t_seed / t_tta:.1f}x; without TTA: {t_seed / t_plain:.1f}x")
    print(f"  label agreement, aerialseg TTA vs seed method: {agree:.3f}")


if __name__ == "__main__":
    main()
