"""Regenerate the README's pictures.

python docs/figures.py [--images 2]          # docs/example.png: held-out images | ground
                                             # truth | the bundled model's prediction
python docs/figures.py --compare OLD NEW     # docs/old_vs_new.png: one image of the tile
    [--image 'Tile 7/image_part_004']        # both models never saw, as it is, at half
                                             # scale and with cooler colours
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from aerialseg.config import data_root
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference.segmenter import load_model
from aerialseg.plots import examples, legend_handles, save_figure

HERE = Path(__file__).parent


def example_figure(n: int) -> Path:
    root = Path(data_root())
    seg = load_model()
    held = set(seg.meta["val_images"])
    pairs = [p for p in find_pairs(root) if p.id in held]
    # one small and one large held-out image, to show both ends of the dataset
    pairs = sorted(pairs, key=lambda p: p.image.stat().st_size)
    chosen = [pairs[len(pairs) // 3], pairs[-1]][:n]
    samples = [load_sample(p, seg.classes) for p in chosen]
    preds = [seg.segment(s.image, tta=True) for s in samples]
    return examples(samples, preds, seg.classes, HERE / "example.png", dpi=60)


def compare_figure(old: str, new: str, image: str) -> Path:
    """Rows: the image as it is, at half scale, cooler; columns: photo | truth | old | new,
    each map titled with its pixel accuracy."""
    from matplotlib.figure import Figure

    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from robustness import PERTURBATIONS  # the suite's own perturbations

    models = [load_model(old), load_model(new)]
    pair = next(p for p in find_pairs(data_root()) if p.id == image)
    base = load_sample(pair, models[0].classes)
    rows = {"as it is": base}
    for name in ("scale x0.5", "cooler (R x0.85, B x1.15)"):
        rows[name] = PERTURBATIONS[name](base)
    classes = models[0].classes
    fig = Figure(figsize=(16, 4.2 * len(rows)))
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for ax_row, (what, s) in zip(axes, rows.items()):
        labelled = s.labels != 255
        panels = [(s.image, f"{image}: {what}"), (classes.colorize(s.labels), "ground truth")]
        for seg, label, path in zip(models, ("old", "new"), (old, new)):
            pred = seg.segment(s.image)
            acc = float(np.mean(pred[labelled] == s.labels[labelled]))
            name = "/".join(Path(path).parts[-2:])  # run folder and file: runs' files are all last
            panels.append((classes.colorize(pred), f"{label}: {name} (accuracy {acc:.3f})"))
        for ax, (img, title) in zip(ax_row, panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    fig.legend(handles=legend_handles(classes), loc="lower center", ncol=len(classes))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_figure(fig, HERE / "old_vs_new.png", 60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="two checkpoints")
    ap.add_argument("--image", default="Tile 7/image_part_004", help="dataset image id")
    args = ap.parse_args()
    if args.compare:
        out = compare_figure(*args.compare, args.image)
    else:
        out = example_figure(args.images)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
