"""What ``aerialseg finetune`` gains on imagery the model never saw, and what it forgets.

Protocol (issue 12): a model trained WITHOUT Tile 7 (``train --val-tiles "Tile 7"``) is the
parent. Two Tile 7 images are chosen at random; simulated brush strokes (discs of radius
10-20 px) are drawn from their ground truth, most of them (``--on-errors``) centred on pixels
the parent gets wrong, until ``--fraction`` of the two images' pixels are labelled. The
strokes are written as label PNGs (class indices, 255 = unlabelled) and the model is
fine-tuned through the same function ``aerialseg finetune`` runs, with its default settings
apart from the method compared:

- neither: strokes only (``--distill 0``);
- distill: the default (self-distillation on the parent's confident unlabelled pixels);
- replay: ``--distill 0 --data-replay`` (tiles 1-6, the parent's training data);
- both: distillation and replay.

Scores (whole images, predicted as ``segment`` does): the 7 OTHER Tile 7 images, the unlabelled
pixels of the two painted images, and images of tiles 1-6 (forgetting; ``--forget-images`` per
tile, the first ones by name, to fit the shared CPU). Results are appended to a JSON-lines file
(a rerun skips what is there), then summarised as mean and spread over the seeds.

    nice -n 10 python benchmarks/finetune_gain.py --parent runs/tile7-default/last.safetensors
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aerialseg.classes import IGNORE_INDEX
from aerialseg.config import FinetuneConfig, data_root
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference.segmenter import load_model
from aerialseg.io.images import save_image
from aerialseg.metrics import SegmentationMetrics
from aerialseg.training.finetune import finetune

METHODS = {
    "neither": ({"distill": 0.0}, False),
    "distill": ({}, False),
    "replay": ({"distill": 0.0}, True),
    "both": ({}, True),
}


def strokes(truth, pred, fraction, on_errors, rng):
    """Disc strokes of radius 10-20 px labelled from ``truth`` until ``fraction`` of the
    pixels is labelled; a share ``on_errors`` of the discs is centred on a wrong pixel."""
    h, w = truth.shape
    labels = np.full((h, w), IGNORE_INDEX, np.uint8)
    wrong = np.flatnonzero((pred != truth) & (truth != IGNORE_INDEX))
    anywhere = np.flatnonzero(truth != IGNORE_INDEX)
    yy, xx = np.mgrid[-20:21, -20:21]
    target = fraction * h * w
    while np.count_nonzero(labels != IGNORE_INDEX) < target:
        pool = wrong if (rng.random() < on_errors and len(wrong)) else anywhere
        cy, cx = divmod(int(pool[rng.integers(len(pool))]), w)
        r = rng.uniform(10, 20)
        disc = yy**2 + xx**2 <= r * r
        ys, xs = cy + yy[disc], cx + xx[disc]
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        labels[ys[keep], xs[keep]] = truth[ys[keep], xs[keep]]
    return labels


def metrics(classes, samples, preds, masks=None):
    """Scores of ``preds`` over ``samples``; ``masks`` (per sample, bool) limits the pixels."""
    m = SegmentationMetrics(len(classes), classes.land_cover)
    for i, (s, pred) in enumerate(zip(samples, preds)):
        target = s.labels if masks is None else np.where(masks[i], s.labels, IGNORE_INDEX)
        m.update(torch.from_numpy(target).long()[None], torch.from_numpy(pred).long()[None])
    r = m.compute()
    keep = ("pixel_accuracy", "mean_iou", "mean_iou_land_cover", "per_class_iou")
    return {k: r[k] for k in keep}


def parse_variant(text: str) -> tuple[str, dict]:
    tag, _, items = text.partition(":")
    extra: dict = {}
    for item in filter(None, items.split(",")):
        k, v = item.split("=")
        extra[k] = {"true": True, "false": False}.get(v)
        if extra[k] is None:
            extra[k] = float(v) if "." in v or "e" in v else int(v)
    return tag, extra


def gain(row: dict, part: str, key: str = "pixel_accuracy") -> float:
    return row[part]["after"][key] - row[part]["before"][key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", required=True, help="a model trained without Tile 7")
    ap.add_argument("--data", help="the Dubai dataset (default: $AERIALSEG_DATA)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="neither,distill,replay,both")
    ap.add_argument("--fractions", default="0.02", help="labelled share of the two images")
    ap.add_argument("--on-errors", type=float, default=0.8)
    ap.add_argument("--forget-images", type=int, default=1, help="per tile of tiles 1-6")
    ap.add_argument("--minutes", type=float, default=FinetuneConfig.minutes)
    ap.add_argument(
        "--variant",
        action="append",
        help="TAG:k=v,k=v - settings other than finetune's defaults, named TAG in the results "
        "(e.g. nobalance:balance=false); repeatable; default: the defaults, untagged",
    )
    ap.add_argument("--results", default="benchmarks/results/finetune_gain.jsonl")
    ap.add_argument("--figure", help="write a before/strokes/after figure here (first run)")
    ap.add_argument("--summary", action="store_true", help="only summarise --results")
    args = ap.parse_args()
    if args.summary:
        summary(Path(args.results))
        return
    root = Path(data_root(args.data))
    parent = load_model(args.parent)
    pairs = find_pairs(root)
    tile7 = [load_sample(p, parent.classes) for p in pairs if p.group == "Tile 7"]
    forget = []
    for t in range(1, 7):
        group = [p for p in pairs if p.group == f"Tile {t}"][: args.forget_images]
        forget += [load_sample(p, parent.classes) for p in group]
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {
        (r["seed"], r["method"], r["fraction"], r.get("tag", ""))
        for r in map(json.loads, out.read_text().splitlines() if out.exists() else [])
    }
    variants = [parse_variant(v) for v in args.variant or [":"]]
    t0 = time.perf_counter()
    before_preds = [parent.segment(s.image) for s in tile7]
    before_forget = metrics(parent.classes, forget, [parent.segment(s.image) for s in forget])
    print(f"parent scored in {time.perf_counter() - t0:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        replay_root = Path(tmp) / "replay"  # tiles 1-6: what the parent trained on
        replay_root.mkdir()
        for t in range(1, 7):
            (replay_root / f"Tile {t}").symlink_to(root / f"Tile {t}")
        for seed in map(int, args.seeds.split(",")):
            rng = np.random.default_rng(seed)
            painted = sorted(rng.choice(len(tile7), size=2, replace=False).tolist())
            others = [s for i, s in enumerate(tile7) if i not in painted]
            for fraction in map(float, args.fractions.split(",")):
                srng = np.random.default_rng([seed, round(fraction * 1e4)])
                labels = [
                    strokes(tile7[i].labels, before_preds[i], fraction, args.on_errors, srng)
                    for i in painted
                ]
                folder = Path(tmp) / f"s{seed}-f{fraction}"
                (folder / "images").mkdir(parents=True)
                (folder / "labels").mkdir()
                for i, lab in zip(painted, labels):
                    stem = tile7[i].id.split("/")[-1]
                    (folder / "images" / f"{stem}.jpg").symlink_to(
                        root / "Tile 7/images" / f"{stem}.jpg"
                    )
                    save_image(folder / "labels" / f"{stem}.png", lab)  # class indices
                unpainted = [lab == IGNORE_INDEX for lab in labels]
                p_samples = [tile7[i] for i in painted]
                o_before = [p for i, p in enumerate(before_preds) if i not in painted]
                before_others = metrics(parent.classes, others, o_before)
                before_unpainted = metrics(
                    parent.classes, p_samples, [before_preds[i] for i in painted], unpainted
                )
                for method, (tag, extra) in itertools.product(args.methods.split(","), variants):
                    key = (seed, method, fraction, tag)
                    if key in done:
                        continue
                    settings, replay = METHODS[method]
                    cfg = FinetuneConfig(minutes=args.minutes, seed=seed, **{**settings, **extra})
                    model = folder / f"{method}.safetensors"
                    rec = finetune(
                        args.parent,
                        folder / "images",
                        folder / "labels",
                        model,
                        cfg,
                        replay_root if replay else None,
                        progress=False,
                    )
                    seg = load_model(model)
                    preds = [seg.segment(s.image) for s in others]
                    after_others = metrics(seg.classes, others, preds)
                    after_unpainted = metrics(
                        seg.classes, p_samples, [seg.segment(s.image) for s in p_samples], unpainted
                    )
                    after_forget = metrics(
                        seg.classes, forget, [seg.segment(s.image) for s in forget]
                    )
                    row = {
                        "seed": seed,
                        "method": method,
                        "fraction": fraction,
                        "tag": tag,
                        "settings": cfg.to_dict(),
                        "painted": [tile7[i].id for i in painted],
                        "labelled_share": rec["labelled_pixels"]
                        / sum(s.labels.size for s in p_samples),
                        "steps": rec["steps"],
                        "seconds": rec["seconds"],
                        "others": {"before": before_others, "after": after_others},
                        "unpainted": {"before": before_unpainted, "after": after_unpainted},
                        "forget": {"before": before_forget, "after": after_forget},
                    }
                    with open(out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    lc = "mean_iou_land_cover"
                    print(
                        f"seed {seed} {method:8s} {fraction:.3f} {tag}: {rec['steps']} "
                        f"steps {rec['seconds']:.0f} s | others acc {gain(row, 'others'):+.4f} "
                        f"mIoU5 {gain(row, 'others', lc):+.4f} | unpainted acc "
                        f"{gain(row, 'unpainted'):+.4f} | tiles 1-6 acc {gain(row, 'forget'):+.4f}"
                        f" mIoU5 {gain(row, 'forget', lc):+.4f}",
                        flush=True,
                    )
                    if args.figure:
                        figure(args.figure, tile7, painted, labels, others, o_before, preds, parent)
                        args.figure = None


def summary(path: Path) -> None:
    """Markdown tables of the results: per variant, the mean (and min..max) over seeds."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["fraction"], r.get("tag", ""), r["method"]), []).append(r)
    lc, names = "mean_iou_land_cover", ("Building", "Land", "Road", "Veg.", "Water", "Unlab.")

    def cell(rs, part, key, i=None):
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


def figure(path, tile7, painted, labels, others, before_preds, after_preds, parent) -> None:
    """One painted image with its strokes; one held-out image: truth, before, after."""
    from matplotlib.figure import Figure

    from aerialseg.plots import legend_handles, save_figure

    c = parent.classes
    s = others[0]
    before = before_preds[0]
    p = tile7[painted[0]]
    strokes_rgb = p.image.copy()
    on = labels[0] != IGNORE_INDEX
    strokes_rgb[on] = c.colorize(labels[0])[on]
    panels = [
        (strokes_rgb, f"strokes on {p.id} (painted)"),
        (s.image, f"{s.id} (held out)"),
        (c.colorize(s.labels), "ground truth"),
        (c.colorize(before), "before fine-tuning"),
        (c.colorize(after_preds[0]), "after fine-tuning"),
    ]
    fig = Figure(figsize=(20, 4.8))
    for i, (img, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.legend(handles=legend_handles(c), loc="lower center", ncol=len(c), fontsize=9)
    save_figure(fig, path, dpi=80)


if __name__ == "__main__":
    main()
