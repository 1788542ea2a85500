"""Regenerate docs/example.png: held-out images | ground truth | the bundled model's prediction.

python docs/figures.py [--images 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aerialseg.config import data_root
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference.segmenter import load_model
from aerialseg.plots import examples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2)
    args = ap.parse_args()
    root = Path(data_root())
    seg = load_model()
    held = set(seg.meta["val_images"])
    pairs = [p for p in find_pairs(root) if p.id in held]
    # one small and one large held-out image, to show both ends of the dataset
    pairs = sorted(pairs, key=lambda p: p.image.stat().st_size)
    chosen = [pairs[len(pairs) // 3], pairs[-1]][: args.images]
    samples = [load_sample(p, seg.classes) for p in chosen]
    preds = [seg.segment(s.image, tta=True) for s in samples]
    out = examples(samples, preds, seg.classes, Path(__file__).parent / "example.png", dpi=60)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
