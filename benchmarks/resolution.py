"""At which resolution does the model see best? Its accuracy on imagery of known pixel size,
resampled by several factors.

``segment --input-gsd X`` resamples an image by X / (the model's gsd), so the factor that
scores best on imagery of known pixel size says what the model's gsd really is. Scored on
the two labelled OpenEarthMap scenes (about 0.5 m per pixel; masks in our classes, 255 =
unlabelled): pixel accuracy and mIoU over the 5 land-cover classes (a class counts where
prediction or truth has it), per scene and pooled. Factor f is an implied model gsd of
0.5 / f metres.

    python benchmarks/resolution.py [--model M] [--other OTHER_PLACES]
        [--scales 0.25 0.35 0.5 0.7 1.0] [--gsd 0.5]

Figure: the accuracy-against-scale table on two OpenEarthMap scenes, quoted in
docs/tutorials/new_place.md (Resolution) and docs/results.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
import torch

from aerialseg.gis.rasters import RasterSource
from aerialseg.inference.segmenter import load_segmenter

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
CLASSES = 5  # Building, Land, Road, Vegetation, Water: the classes the masks hold


def confusion(truth: np.ndarray, pred: np.ndarray, n: int = CLASSES) -> np.ndarray:
    keep = truth < n
    idx = truth[keep].astype(np.int64) * (n + 1) + np.minimum(pred[keep], n).astype(np.int64)
    full = np.bincount(idx, minlength=n * (n + 1)).reshape(n, n + 1)
    return full  # column n: predicted Unlabeled (wrong for every labelled pixel)


def scores(cm: np.ndarray) -> tuple[float, float]:
    """(pixel accuracy, mIoU over the classes present in truth or prediction)."""
    n = cm.shape[0]
    tp = np.diag(cm[:, :n])
    union = cm.sum(1) + cm[:, :n].sum(0) - tp
    present = union > 0
    return float(tp.sum() / cm.sum()), float((tp[present] / union[present]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="checkpoint (default: the bundled model)")
    ap.add_argument("--other", type=Path, default=SHARED / "other-places")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.35, 0.5, 0.7, 1.0])
    ap.add_argument("--gsd", type=float, default=0.5, help="the scenes' metres per pixel")
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = args.other / "labelled" / "oem"
    scenes = sorted((folder / "images").glob("*.tif"))
    if not scenes:
        raise SystemExit(f"{folder}: no labelled scenes")
    data = []
    for p in scenes:
        with rasterio.open(folder / "masks" / p.name) as m:
            truth = m.read(1)
        with RasterSource(p) as src:
            data.append((p.stem, src.read_all()[0], truth))
    base = load_segmenter(args.model, device="cpu")
    print(f"model gsd recorded: {base.gsd} m; scenes at {args.gsd} m per pixel")
    names = [name for name, _, _ in data]
    head = " | ".join(f"{n} acc | {n} mIoU" for n in names)
    print(f"| factor | model gsd (m) | {head} | pooled acc | pooled mIoU |")
    print("|---" * (4 + 2 * len(names)) + "|")
    for f in args.scales:
        seg = base.resampled(f)
        total, cells = 0, []
        for _, rgb, truth in data:
            cm = confusion(truth, seg.segment(rgb))
            total = total + cm
            cells += [f"{v:.3f}" for v in scores(cm)]
        pooled = " | ".join(f"{v:.3f}" for v in scores(total))
        print(f"| {f} | {args.gsd / f:.2f} | {' | '.join(cells)} | {pooled} |")


if __name__ == "__main__":
    main()
