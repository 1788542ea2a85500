"""finetune_gain.py's reports: its results as Markdown tables and a plot, and its figure.

python benchmarks/finetune_gain.py --parent x --summary --results FILE.jsonl
python benchmarks/finetune_gain.py --parent x --plot OUT.png --results FILE.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aerialseg.classes import IGNORE_INDEX
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference.segmenter import load_model


def gain(row: dict, part: str, key: str = "pixel_accuracy") -> float:
    if row[part]["before"] is None:  # no pixel of that part (see metrics)
        return float("nan")
    return row[part]["after"][key] - row[part]["before"][key]


def summary(path: Path) -> None:
    """Markdown tables of the results: per variant, the mean (and min..max) over seeds."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if r.get("kind", "score") == "score"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["fraction"], r.get("tag", ""), r["method"]), []).append(r)
    lc, names = "mean_iou_land_cover", ("Building", "Land", "Road", "Veg.", "Water", "Unlab.")

    def cell(rs, part, key, i=None):
        if any(r[part]["before"] is None for r in rs):
            return "—"
        get = (lambda d: d[key]) if i is None else (lambda d: d[key][i])  # noqa: E731
        before = np.mean([get(r[part]["before"]) for r in rs])
        after = [get(r[part]["after"]) for r in rs]
        spread = f" ({min(after):.3f}..{max(after):.3f})" if len(rs) > 1 else ""
        return f"{before:.3f} → {np.mean(after):.3f}{spread}"

    print(
        "| labelled | variant | method | seeds | steps | other Tile 7 images: acc | mIoU(6) "
        "| mIoU(5) | unpainted pixels: acc | mIoU(5) | tiles 1-6: acc | mIoU(5) |"
    )
    print("|" + "---|" * 12)
    for (fraction, tag, method), rs in groups.items():
        seeds = ",".join(str(r["seed"]) for r in rs)
        steps = "/".join(str(r["steps"]) for r in rs)
        print(
            f"| {fraction:.1%} | {tag or 'default'} | {method} | {seeds} | {steps} | "
            f"{cell(rs, 'others', 'pixel_accuracy')} | {cell(rs, 'others', 'mean_iou')} | "
            f"{cell(rs, 'others', lc)} | {cell(rs, 'unpainted', 'pixel_accuracy')} | "
            f"{cell(rs, 'unpainted', lc)} | {cell(rs, 'forget', 'pixel_accuracy')} | "
            f"{cell(rs, 'forget', lc)} |"
        )
    print("\nPer-class IoU, other Tile 7 images / tiles 1-6 (mean over seeds, before → after):\n")
    print("| labelled | variant | method | " + " | ".join(names) + " |")
    print("|" + "---|" * (3 + len(names)))
    for (fraction, tag, method), rs in groups.items():
        cells = []
        for i in range(len(names)):
            o = [cell(rs, part, "per_class_iou", i).split(" (")[0] for part in ("others", "forget")]
            cells.append(" / ".join(o))
        print(f"| {fraction:.1%} | {tag or 'default'} | {method} | " + " | ".join(cells) + " |")


def plot_fractions(path: Path, out: str) -> None:
    """Gain on the other Tile 7 images (accuracy, mIoU(5)) and change on tiles 1-6 against the
    labelled share, one line per variant and seed (seeds paint different images, so they are
    not averaged into one line), for the variants run at more than one share."""
    from matplotlib.figure import Figure

    from aerialseg.plots import save_figure

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if r.get("kind", "score") == "score"]
    swept = {}
    for r in rows:
        swept.setdefault((r.get("tag", ""), r["method"]), set()).add(r["fraction"])
    series: dict[tuple, list[dict]] = {}
    for r in rows:
        if len(swept[(r.get("tag", ""), r["method"])]) > 1:
            series.setdefault((r.get("tag", ""), r["method"], r["seed"]), []).append(r)
    fig = Figure(figsize=(11, 3.6))
    panels = [
        ("others", "pixel_accuracy", "other Tile 7 images: accuracy gain"),
        ("others", "mean_iou_land_cover", "other Tile 7 images: mIoU(5) gain"),
        ("forget", "pixel_accuracy", "tiles 1-6: accuracy change"),
    ]
    for j, (part, key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        for (tag, method, seed), rs in sorted(series.items()):
            rs = sorted(rs, key=lambda r: r["fraction"])
            xs = [100 * r["fraction"] for r in rs]
            label = f"{tag or 'default'} ({method}), seed {seed}"
            ax.plot(xs, [gain(r, part, key) for r in rs], marker="o", label=label)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks([0.5, 1, 2, 5], ["0.5", "1", "2", "5"])
        ax.set_xlabel("labelled share of the two painted images (%)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out, dpi=90)


def figure_from(run: Path, parent, root: Path, path: str) -> None:
    """The figure of a kept run: its first painted image and the first Tile 7 image it did
    not paint, both maps predicted now (the parent's and the fine-tuned model's)."""
    (model,) = run.glob("*.safetensors")
    seg = load_model(model)
    pairs = [p for p in find_pairs(root) if p.group == "Tile 7"]
    stems = sorted(p.stem for p in (run / "labels").glob("*.png"))
    painted = next(p for p in pairs if p.id.split("/")[1] == stems[0])
    other = next(p for p in pairs if p.id.split("/")[1] not in stems)
    rows = []
    from PIL import Image

    drawn = np.asarray(Image.open(run / "labels" / f"{stems[0]}.png"))
    for pair, lab in ((painted, drawn), (other, None)):
        s = load_sample(pair, parent.classes)
        rows.append((s, lab, parent.segment(s.image), seg.segment(s.image)))
    figure(path, rows, parent.classes)


def figure(path, rows, classes) -> None:
    """Per row, one Tile 7 image (never trained on): the photo (with the strokes, if painted),
    the map before fine-tuning, after, and the ground truth, each map with its accuracy."""
    from matplotlib.figure import Figure

    from aerialseg.plots import legend_handles, save_figure

    fig = Figure(figsize=(16, 4.6 * len(rows)))
    for r, (s, strokes_, before, after) in enumerate(rows):
        photo = s.image.copy()
        title = f"{s.id} (not painted)"
        if strokes_ is not None:
            on = strokes_ != IGNORE_INDEX
            photo[on] = classes.colorize(strokes_)[on]
            title = f"{s.id}: strokes on {on.mean():.1%} of it"
        known = s.labels != IGNORE_INDEX
        acc = [f"{(p == s.labels)[known].mean():.3f} accuracy" for p in (before, after)]
        panels = [
            (photo, title),
            (classes.colorize(before), f"before fine-tuning: {acc[0]}"),
            (classes.colorize(after), f"after: {acc[1]}"),
            (classes.colorize(s.labels), "ground truth"),
        ]
        for i, (img, text) in enumerate(panels):
            ax = fig.add_subplot(len(rows), len(panels), r * len(panels) + i + 1)
            ax.imshow(img)
            ax.set_title(text, fontsize=10)
            ax.axis("off")
    fig.legend(handles=legend_handles(classes), loc="lower center", ncol=len(classes), fontsize=10)
    save_figure(fig, path, dpi=60)
