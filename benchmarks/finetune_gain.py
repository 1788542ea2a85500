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
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aerialseg.classes import IGNORE_INDEX
from aerialseg.config import FinetuneConfig, data_root
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference.segmenter import load_model
from aerialseg.io.files import file_digest
from aerialseg.io.images import save_image
from aerialseg.metrics import SegmentationMetrics
from aerialseg.training.finetune import finetune

try:  # run as a script from the repository root or from benchmarks/
    from finetune_report import figure, figure_from, gain, plot_fractions, summary
except ImportError:
    from benchmarks.finetune_report import figure, figure_from, gain, plot_fractions, summary

METHODS = {
    "neither": ({"distill": 0.0}, False),
    "distill": ({}, False),
    "replay": ({"distill": 0.0}, True),
    "both": ({}, True),
}


def strokes(truth, pred, fraction, on_errors, rng):
    """Disc strokes of radius 10-20 px labelled from ``truth`` until ``fraction`` of the
    pixels is labelled; a share ``on_errors`` of the discs is centred on a wrong pixel.
    ``fraction`` 1: the whole ground truth - the ceiling of what the two images can teach."""
    if fraction >= 1:
        return truth.copy()
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
    """Scores of ``preds`` over ``samples``; ``masks`` (per sample, bool) limits the pixels
    (None when they leave none, as with the whole ground truth painted)."""
    if masks is not None and not any(m.any() for m in masks):
        return None
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
        extra[k] = {"true": True, "false": False}.get(v, v)
        for kind in (int, float):
            try:
                extra[k] = kind(v)
                break
            except ValueError:
                pass
    return tag, extra


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def parent_predictions(parent, samples, cache: Path) -> list[np.ndarray]:
    """The parent's (H, W, C) float16 probabilities for ``samples``, kept in ``cache`` (one
    folder per parent file) so that later runs of the benchmark do not predict them again."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for s in samples:
        path = cache / (s.id.replace("/", "_").replace(" ", "") + ".npy")
        if not path.exists():
            probs = parent.predict_proba(s.image).astype(np.float16)
            tmp = path.with_suffix(f".{os.getpid()}.npy")  # two benchmarks may share a cache
            np.save(tmp, probs)
            tmp.replace(path)
        out.append(np.load(path, mmap_mode="r"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", required=True, help="a model trained without Tile 7")
    ap.add_argument("--data", help="the Dubai dataset (default: $AERIALSEG_DATA)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="neither,distill,replay,both")
    ap.add_argument(
        "--fractions",
        default="0.02",
        help="labelled share of the two images (1: their whole ground truth, the ceiling)",
    )
    ap.add_argument("--on-errors", type=float, default=0.8)
    ap.add_argument("--forget-images", type=int, default=1, help="per tile of tiles 1-6")
    ap.add_argument("--minutes", type=float, default=FinetuneConfig.minutes)
    ap.add_argument(
        "--steps",
        type=int,
        help="a fixed number of steps instead of the clock (the count --calibrate measured), "
        "so that results do not depend on the load of a shared CPU",
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="only fine-tune for --minutes (set-up included, as `finetune` counts it) and "
        "record the steps done; no scores",
    )
    ap.add_argument(
        "--variant",
        action="append",
        help="TAG:k=v,k=v - settings other than finetune's defaults, named TAG in the results "
        "(e.g. nobalance:balance=false); repeatable; default: the defaults, untagged",
    )
    ap.add_argument("--results", default="runs/finetune_gain.jsonl")
    ap.add_argument("--cache", default="runs/finetune_gain_cache", help="parent predictions")
    ap.add_argument("--figure", help="write a before/strokes/after figure here (first run)")
    ap.add_argument(
        "--keep", help="keep each run's folder (strokes, fine-tuned model) under this folder"
    )
    ap.add_argument(
        "--figure-from",
        metavar="RUN",
        help="with --figure: draw it from a kept run folder (images/, labels/, one model)",
    )
    ap.add_argument(
        "--figure-only",
        action="store_true",
        help="with --figure: fine-tune and draw the figure, without scoring (nor a result row)",
    )
    ap.add_argument("--summary", action="store_true", help="only summarise --results")
    ap.add_argument("--plot", help="only plot the gain against the labelled share (PNG)")
    args = ap.parse_args()
    if args.summary or args.plot:
        if args.plot:
            plot_fractions(Path(args.results), args.plot)
        else:
            summary(Path(args.results))
        return
    root = Path(data_root(args.data))
    parent = load_model(args.parent)
    if args.figure and args.figure_from:
        figure_from(Path(args.figure_from), parent, root, args.figure)
        return
    pairs = find_pairs(root)
    tile7 = [load_sample(p, parent.classes) for p in pairs if p.group == "Tile 7"]
    forget = []
    for t in range(1, 7):
        group = [p for p in pairs if p.group == f"Tile {t}"][: args.forget_images]
        forget += [load_sample(p, parent.classes) for p in group]
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = "calibrate" if args.calibrate else "score"
    done = {
        (r["seed"], r["method"], r["fraction"], r.get("tag", ""), r.get("kind", "score"))
        for r in map(json.loads, out.read_text().splitlines() if out.exists() else [])
    }
    variants = [parse_variant(v) for v in args.variant or [":"]]
    t0 = time.perf_counter()
    cache = Path(args.cache) / file_digest(Path(args.parent))[:16]
    tile7_probs = parent_predictions(parent, tile7, cache)
    before_preds = [p.argmax(-1).astype(np.uint8) for p in tile7_probs]
    forget_probs = parent_predictions(parent, forget, cache) if not args.calibrate else []
    before_forget = metrics(parent.classes, forget, [p.argmax(-1) for p in forget_probs])
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
                    key = (seed, method, fraction, tag, kind)
                    if key in done and not args.figure_only:
                        continue
                    settings, replay = METHODS[method]
                    if args.calibrate:  # the clock alone: how many steps fit
                        timing = {"minutes": args.minutes, "steps": None}
                    elif args.steps:  # the steps bind, not the (shared) CPU's speed
                        timing = {"minutes": 60.0, "steps": args.steps}
                    else:  # as `finetune` runs by default
                        timing = {"minutes": args.minutes}
                    cfg = FinetuneConfig(seed=seed, **timing, **{**settings, **extra})
                    model = folder / f"{method}-{tag}.safetensors"
                    load_before, cpu_before = os.getloadavg()[0], _cpu_seconds()
                    rec = finetune(
                        args.parent,
                        folder / "images",
                        folder / "labels",
                        model,
                        cfg,
                        replay_root if replay else None,
                        progress=False,
                        # the parent's probabilities, as the app passes those of its map;
                        # predicting them is part of the clock only when calibrating
                        parent_probs=None
                        if args.calibrate
                        else [np.asarray(tile7_probs[i], np.float32) for i in painted],
                    )
                    row = {
                        "kind": kind,
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
                        # the 1-minute load average before and after, and the CPU seconds
                        # the fine-tune used: how far the wall time was from an idle machine's
                        "load": [load_before, os.getloadavg()[0]],
                        "cpu_seconds": round(_cpu_seconds() - cpu_before, 1),
                    }
                    if args.calibrate:
                        with open(out, "a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(
                            f"calibrate {method} {tag}: {rec['steps']} steps in "
                            f"{rec['seconds']:.1f} s, {row['cpu_seconds']} CPU s (load "
                            f"{row['load'][0]:.1f}, {row['load'][1]:.1f})",
                            flush=True,
                        )
                        continue
                    if args.keep:
                        shutil.copytree(folder, Path(args.keep) / folder.name, dirs_exist_ok=True)
                    seg = load_model(model)
                    if args.figure_only:
                        rows = [
                            (p_samples[0], labels[0], before_preds[painted[0]]),
                            (others[0], None, o_before[0]),
                        ]
                        rows = [(*r, seg.segment(r[0].image)) for r in rows]
                        figure(args.figure, rows, parent.classes)
                        return
                    preds = [seg.segment(s.image) for s in others]
                    after_others = metrics(seg.classes, others, preds)
                    p_after = [seg.segment(s.image) for s in p_samples]
                    after_unpainted = metrics(seg.classes, p_samples, p_after, unpainted)
                    after_forget = metrics(
                        seg.classes, forget, [seg.segment(s.image) for s in forget]
                    )
                    row.update(
                        others={"before": before_others, "after": after_others},
                        unpainted={"before": before_unpainted, "after": after_unpainted},
                        forget={"before": before_forget, "after": after_forget},
                    )
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
                        p_before = [before_preds[i] for i in painted]
                        rows = [(p_samples[0], labels[0], p_before[0], p_after[0])]
                        rows.append((others[0], None, o_before[0], preds[0]))
                        figure(args.figure, rows, parent.classes)
                        args.figure = None


if __name__ == "__main__":
    main()
