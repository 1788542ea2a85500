"""Classic per-pixel baselines next to the U-Net, on the same held-out images and metrics.

The images are the validation side of ``aerialseg train``'s default split
(``split_images(samples, 0.2, seed=0)``); every method is scored by ``aerialseg.evaluate``.
Times are wall-clock on this machine: training (feature extraction included) and prediction
per megapixel of the held-out images. The U-Net's training time is read from its checkpoint.
A ``best.safetensors`` was chosen by its mIoU on these very images, so its score is slightly
optimistic; ``last.safetensors`` was not chosen at all.

    python benchmarks/baselines.py [--data DIR] [--unet RUN/last.safetensors ...]
                                   [--methods kmeans svm random-forest] [--json OUT.json]
                                   [--figure OUT.png]

Figure: the classic-method table (KMeans / SVM / random forest against the U-Nets), quoted in
docs/results.md (what the U-Net adds) and docs/tutorials/classify.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from aerialseg.baselines import METHODS, run_baseline
from aerialseg.classes import DUBAI
from aerialseg.config import data_root
from aerialseg.data.segmentation import load_dataset
from aerialseg.data.splits import split_images
from aerialseg.errors import AerialSegError
from aerialseg.inference.evaluate import evaluate
from aerialseg.inference.segmenter import load_segmenter
from aerialseg.models.checkpoint import read_metadata


class Timed:
    """A segmenter whose predictions are timed (what evaluate calls, and only that)."""

    def __init__(self, seg):
        self.seg, self.classes, self.seconds = seg, seg.classes, 0.0

    def predict_proba(self, rgb, tta=False):
        t0 = time.perf_counter()
        out = self.seg.predict_proba(rgb, tta)
        self.seconds += time.perf_counter() - t0
        return out


def check_split(path: str, val_ids: set[str]) -> None:
    if set(read_metadata(path).get("val_images", [])) != val_ids:
        raise AerialSegError(
            f"{path} was not trained on the default split (its held-out images differ), "
            "so its score would not be comparable"
        )


def score_unet(path: str, data: str) -> dict:
    seg = load_segmenter(path)
    val = split_images(load_dataset(data, seg.classes), 0.2, 0)[1]
    check_split(path, {s.id for s in val})
    timed = Timed(seg)
    result = evaluate(timed, val)
    megapixels = sum(s.area for s in val) / 1e6
    minutes = seg.meta.get("metrics", {}).get("train_minutes")
    result.update(
        method=f"{seg.model.config['name']} ({Path(path).name}, epoch {seg.meta.get('epoch')})",
        train_seconds=minutes * 60 if minutes is not None else float("nan"),
        predict_seconds_per_megapixel=timed.seconds / megapixels,
        megapixels=megapixels,
    )
    return result


def table(rows: list[dict]) -> str:
    names = list(DUBAI.names)
    head = ["method", "pixel acc.", "mIoU", "mIoU (land cover)", *names]
    head += ["train s", "predict s/MP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ious = [r["per_class_iou"][n] for n in names]
        cells = [
            r["method"],
            f"{r['pixel_accuracy']:.3f}",
            f"{r['mean_iou']:.3f}",
            f"{r['mean_iou_land_cover']:.3f}",
            *("-" if v != v else f"{v:.3f}" for v in ious),
            f"{r['train_seconds']:.0f}",
            f"{r['predict_seconds_per_megapixel']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(rows: list[dict], path: str) -> None:
    from matplotlib.figure import Figure

    from aerialseg.plots import save_figure

    names = list(DUBAI.names)
    fig = Figure(figsize=(11, 4.5))
    ax = fig.subplots()
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        ious = [np.nan_to_num(r["per_class_iou"][n]) for n in names] + [r["mean_iou"]]
        ax.bar(np.arange(len(names) + 1) + i * width, ious, width, label=r["method"])
    ax.set_xticks(np.arange(len(names) + 1) + 0.4 - width / 2, [*names, "mIoU"])
    ax.set(ylabel="IoU on held-out images", ylim=(0, 1), title="Baselines vs U-Net")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(rows))
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="dataset root (default: $AERIALSEG_DATA)")
    ap.add_argument(
        "--unet",
        action="append",
        default=[],
        help="U-Net checkpoint trained on the default split (repeat for several)",
    )
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--threads", type=int, help="torch threads for the U-Net")
    ap.add_argument("--json", help="write all results here")
    ap.add_argument("--figure", help="write a per-class IoU bar chart here")
    args = ap.parse_args()
    args.data = data_root(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.unet:  # fail before minutes of baselines, not after
        val = split_images(load_dataset(args.data, DUBAI), 0.2, 0)[1]
        for path in args.unet:
            check_split(path, {s.id for s in val})
    rows = []
    for m in args.methods:
        rows.append(run_baseline(m, args.data, 0.2, 0, progress=False))
        print(f"{m}: pixel accuracy {rows[-1]['pixel_accuracy']:.3f}", flush=True)
    for path in args.unet:
        rows.append(score_unet(path, args.data))
    print(f"\n{len(rows[0]['images'])} held-out images, {rows[0]['megapixels']:.2f} megapixels")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    try:
        main()
    except AerialSegError as e:
        raise SystemExit(f"baselines.py: error: {e}") from None
