"""Do window borders show? Two measurements on a real image.

1. Disagreement of overlapping windows: 256 x 256 windows at 50 % overlap are predicted one by
   one; where two horizontal neighbours overlap, the share of pixels whose labels differ is
   binned by the distance to the nearest window edge. Predictions near an edge, where the
   network sees little context, disagree far more than in window centres: that is what the
   spline weights down-weight.
2. Seam visibility: the rate of label changes across the lines where windows end, for naive
   non-overlapping 256 tiles and for aerialseg's blended prediction with 256 windows at 50 %
   overlap, relative to the rate across all other lines. A ratio near 1 means no seam shows.

    python benchmarks/seams.py [--model PATH] [--image PATH]

Figure: the seam figures (window-edge disagreement, label-change rate across window edges),
quoted in docs/results.md (segmenting).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from aerialseg.config import data_root
from aerialseg.inference.segmenter import load_segmenter
from aerialseg.inference.tiling import Tiling
from aerialseg.io.images import read_image
from aerialseg.runtime import autocast, to_tensor

W = 256


@torch.inference_mode()
def window_labels(seg, rgb, y, x):
    with autocast(seg.precision):
        out = seg.model(to_tensor(rgb[y : y + W, x : x + W], seg.precision))
    return out[0].argmax(0).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    root = Path(data_root())
    ap.add_argument("--image", default=str(root / "Tile 5" / "images" / "image_part_002.jpg"))
    args = ap.parse_args()
    rgb = read_image(args.image)
    h, w = rgb.shape[:2]
    seg = load_segmenter(args.model)

    # 1. neighbours' disagreement by distance to the nearest window edge
    bins = [(0, 8), (8, 16), (16, 32), (32, 48), (48, 64)]
    diff, count = np.zeros(len(bins)), np.zeros(len(bins))
    half = W // 2
    for y in range(0, h - W + 1, half):
        row = [window_labels(seg, rgb, y, x) for x in range(0, w - W + 1, half)]
        for a, b in zip(row, row[1:]):
            disagree = a[:, half:] != b[:, :half]  # the shared 128 columns
            cols = np.arange(half)
            edge = np.minimum(cols, half - 1 - cols)  # to B's left edge / A's right edge
            rows_ = np.arange(W)
            edge = np.minimum(edge[None, :], np.minimum(rows_, W - 1 - rows_)[:, None])
            for i, (lo, hi) in enumerate(bins):
                m = (edge >= lo) & (edge < hi)
                diff[i] += disagree[m].sum()
                count[i] += m.sum()
    print(f"image {Path(args.image).name} ({w}x{h}), model {seg.name}")
    print("1. overlapping 256 windows: label disagreement by distance to the nearest edge")
    for (lo, hi), d, c in zip(bins, diff, count):
        print(f"   {lo:3d}-{hi - 1:3d} px from an edge: {d / c:6.1%} of {int(c):,} pixels")

    # 2. label changes across each method's own window edges vs elsewhere, rows and columns
    naive = np.zeros((h // W * W, w // W * W), np.uint8)
    for y in range(0, naive.shape[0], W):
        for x in range(0, naive.shape[1], W):
            naive[y : y + W, x : x + W] = window_labels(seg, rgb, y, x)
    seg.tiling = Tiling(window=W, overlap=0.5, batch_size=8, border=32)
    blended = seg.segment(rgb)
    rows, cols, win_h, win_w, _ = seg.tiling.plan(h, w)
    b = seg.tiling.border
    edges = {
        "naive 256 tiles": (naive, range(W, naive.shape[0], W), range(W, naive.shape[1], W)),
        "aerialseg blended": (
            blended,
            sorted({e - b for y in rows for e in (y, y + win_h)} & set(range(1, h))),
            sorted({e - b for x in cols for e in (x, x + win_w)} & set(range(1, w))),
        ),
        # control: the same map at lines 64 px away from any window edge
        "(control: blended, 64 px off the edges)": (
            blended,
            sorted({e - b + 64 for y in rows for e in (y, y + win_h)} & set(range(1, h))),
            sorted({e - b + 64 for x in cols for e in (x, x + win_w)} & set(range(1, w))),
        ),
    }
    print("2. label-change rate across window edges / across all other lines (1 = no seam)")
    for name, (lab, ys, xs) in edges.items():
        rate = []
        for axis, at in ((0, ys), (1, xs)):
            change = (np.diff(lab, axis=axis) != 0).mean(1 - axis)  # line i: between i-1 and i
            mask = np.zeros(len(change), bool)
            mask[[i - 1 for i in at]] = True
            rate.append((change[mask].sum(), mask.sum(), change[~mask].sum(), (~mask).sum()))
        at_edge = sum(r[0] for r in rate) / sum(r[1] for r in rate)
        other = sum(r[2] for r in rate) / sum(r[3] for r in rate)
        n = sum(r[1] for r in rate)
        print(f"   {name:<40} {at_edge / other:5.2f}x  ({n} lines)")


if __name__ == "__main__":
    main()
