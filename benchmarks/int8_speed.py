"""int8 (onnxruntime, static QDQ) against today's fp32 and bf16 paths, on this CPU.

Figures it makes:
- seconds to segment a 1024 x 1024 image (a crop of Tile 7's first image, random pixels
  without the data), without and with 8x TTA, for PyTorch fp32, PyTorch bf16, onnxruntime fp32
  (``--runtime onnx``) and int8 (``--precision int8``): setups alternate round by round in one
  process, the minimum of ``--rounds`` is printed, with each one's ratio to fp32 and to bf16;
- with ``--accuracy`` (slower): on the model's held-out images (Tile 7's, and all of them),
  whole images as ``aerialseg segment`` windows them, no TTA, and on images of other places
  (``other-places/`` beside the Dubai data, where present): the share of labels equal to
  fp32's and the pixel accuracy against the reference masks, per precision. The aim: int8's
  labels >= 99 % equal to fp32's on the held-out images, its accuracy within 0.005.

The int8 model is loaded as ``--precision int8`` loads it: from the on-disk cache after the
first run (``XDG_CACHE_HOME=DIR`` puts that elsewhere).

    python benchmarks/int8_speed.py [--model PATH] [--rounds 3] [--threads 2] [--accuracy]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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


OTHER = "other-places"
# real orthophotos from elsewhere, no labels: their 1024² centres (agreement only)
UNLABELLED = (
    "zurich-lakeshore-50cm.tif",
    "netherlands-river-25cm.tif",
    "neon-sjer-savanna-10cm.tif",
)


def other_places(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The labelled OpenEarthMap scenes whole (masks in our class indices) and centre crops
    of a few unlabelled orthophotos, where ``root`` has them."""
    from aerialseg.io.images import read_image

    out = {}
    for image in sorted((root / "labelled/oem/images").glob("*.tif")):
        mask = read_image(image.parent.parent / "masks" / image.name, max_pixels=10**9)
        out[f"oem/{image.stem}"] = (read_image(image), mask[..., 0])
    for name in UNLABELLED:
        if (root / "unlabelled" / name).is_file():
            im = read_image(root / "unlabelled" / name, max_pixels=10**9)
            h, w = im.shape[:2]
            s = min(1024, h, w)
            y, x = (h - s) // 2, (w - s) // 2
            out[name] = (np.ascontiguousarray(im[y : y + s, x : x + s]), None)
    return out


def accuracy(segs: dict, root: str) -> None:
    """Labels equal to fp32's and pixel accuracy, per set: the bundled model's held-out
    images (Tile 7's and all of them, whole, as ``aerialseg segment`` windows them, no TTA)
    and other places (not Dubai: how far agreement carries to scenes it was not tuned on)."""
    from aerialseg.classes import DUBAI
    from aerialseg.data.segmentation import find_pairs, load_sample

    held = set(segs["fp32"].meta.get("val_images") or ())
    pairs = [p for p in find_pairs(root) if p.id in held]
    if not pairs:
        print("no held-out images under", root)
        return
    sets: dict[str, list] = {"held-out Tile 7": [], f"held-out, all {len(pairs)}": []}
    for p in pairs:
        s = load_sample(p, DUBAI)
        item = (s.image, s.labels)
        sets[f"held-out, all {len(pairs)}"].append(item)
        if p.group == "Tile 7":
            sets["held-out Tile 7"].append(item)
    others = other_places(Path(root).parent / OTHER)
    if others:
        sets["other places"] = list(others.values())
    for name, items in sets.items():
        equal = {k: 0 for k in segs}
        right = {k: 0 for k in segs}
        total = scored = 0
        for image, truth in items:
            labels = {k: seg.segment(image) for k, seg in segs.items()}
            total += labels["fp32"].size
            known = truth < len(DUBAI) if truth is not None else None  # unlabelled: not scored
            scored += int(known.sum()) if known is not None else 0
            for k, lab in labels.items():
                equal[k] += int((lab == labels["fp32"]).sum())
                if known is not None:
                    right[k] += int((lab == truth)[known].sum())
        print(f"\n{name} ({len(items)} images, no TTA):")
        print(f"{'':12}{'labels = fp32':>15}{'pixel accuracy':>16}")
        for k in segs:
            acc = f"{right[k] / scored:>16.4f}" if scored else ""
            print(f"{k:12}{equal[k] / total:>15.4f}{acc}")


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
