"""Does self-training on a new area's own images, without their masks, help there? (issue 13)

A user with new imagery has the images but no masks. Protocol, for a held-out tile T:

1. The parent is a model trained without T (``train --val-tiles "Tile 7"``).
2. It predicts T's whole images (as ``segment`` does); pixels whose top probability is at
   least ``--confidence`` become pseudo-labels, the others stay unlabelled (255). They are
   written as label PNGs, the format ``aerialseg finetune --labels`` reads.
3. The parent is fine-tuned on them by the function ``aerialseg finetune`` runs, with replay
   of real labelled crops from the parent's own training tiles (``--data-replay``: tiles other
   than T, through a folder of links, so no mask of T is ever read for training) so that the
   pseudo-labels' own mistakes are held in check.
4. T's images are scored against their real masks before and after. This is transductive on
   purpose: the images that gave the pseudo-labels are the ones the user wants mapped.

Results are appended to a JSON-lines file (default runs/self_training.jsonl; a rerun skips
what is there; this session's rows: docs/experiments/self_training.jsonl).

    nice python benchmarks/self_training.py --parent runs/cpu-t7-effl0-aug/last.safetensors \\
        --tile "Tile 7" --minutes 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from aerialseg.classes import IGNORE_INDEX
from aerialseg.config import FinetuneConfig, data_root
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference.evaluate import evaluate
from aerialseg.inference.segmenter import load_model
from aerialseg.io.images import save_image
from aerialseg.training.finetune import finetune

KEYS = ("pixel_accuracy", "mean_iou", "mean_iou_land_cover", "per_class_iou")


def scores(result: dict) -> dict:
    return {k: result[k] for k in KEYS}


def pseudo_labels(seg, samples, confidence: float, out: Path) -> dict:
    """Write one label PNG per sample (confident pixels labelled); return how many pixels were
    labelled and how many of those agree with the real mask (a diagnostic only)."""
    out.mkdir(parents=True, exist_ok=True)
    labelled = right = total = 0
    for s in samples:
        probs = seg.predict_proba(s.image)
        labels = np.where(probs.max(-1) >= confidence, probs.argmax(-1), IGNORE_INDEX)
        labels = labels.astype(np.uint8)
        save_image(out / f"{Path(s.id).name}.png", labels)
        known = (labels != IGNORE_INDEX) & (s.labels != IGNORE_INDEX)
        labelled += int((labels != IGNORE_INDEX).sum())
        right += int((labels[known] == s.labels[known]).sum())
        total += labels.size
    return {"labelled_share": labelled / total, "pseudo_label_accuracy": right / max(labelled, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", required=True, help="a model trained without --tile")
    ap.add_argument("--tile", default="Tile 7", help="the held-out tile")
    ap.add_argument("--data", help="the Dubai dataset (default: $AERIALSEG_DATA)")
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, help="stop after this many steps if that comes first")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=8, help="pseudo-labelled crops per step")
    ap.add_argument("--replay-batch", type=int, default=8, help="real crops per step")
    ap.add_argument("--balance", action="store_true", help="weigh pseudo-label classes equally")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--tag", default="", help="a name for this run in the results")
    ap.add_argument("--results", default="runs/self_training.jsonl")
    args = ap.parse_args()

    names = ("parent", "tile", "confidence", "minutes", "steps", "lr", "batch_size",
             "replay_batch", "balance", "tag")  # fmt: skip
    key = {k: getattr(args, k) for k in names}
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = out.read_text().splitlines() if out.exists() else []
    done = [json.loads(line)["run"] for line in lines]
    if key in done:
        print(f"already in {out}: {key}")
        return
    root = Path(data_root(args.data))
    parent = load_model(args.parent)
    pairs = find_pairs(root)
    held = [load_sample(p, parent.classes) for p in pairs if p.group == args.tile]
    if not held:
        raise SystemExit(f"{root}: no images of {args.tile!r}")
    others = sorted({p.group for p in pairs} - {args.tile})
    t0 = time.perf_counter()
    before = scores(evaluate(parent, held, progress=True))
    print(f"parent on {args.tile}: {before['pixel_accuracy']:.4f} acc, "
          f"{before['mean_iou_land_cover']:.4f} mIoU(5) ({time.perf_counter() - t0:.0f} s)",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        replay = tmp / "replay"  # the parent's training tiles only
        replay.mkdir()
        for group in others:
            (replay / group).symlink_to(root / group, target_is_directory=True)
        pseudo = pseudo_labels(parent, held, args.confidence, tmp / "labels")
        print(f"pseudo-labels: {pseudo['labelled_share']:.1%} of pixels, "
              f"{pseudo['pseudo_label_accuracy']:.3f} of them right", flush=True)  # fmt: skip
        cfg = FinetuneConfig(
            minutes=args.minutes, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
            replay_batch=args.replay_batch, replay_images=10**6, balance=args.balance,
            distill=0.0,  # the pseudo-labels are the parent's confident pixels already
            threads=args.threads,
        )  # fmt: skip
        record = finetune(
            args.parent, root / args.tile / "images", tmp / "labels", tmp / "student.safetensors",
            cfg, data_replay=replay,
        )  # fmt: skip
        student = load_model(tmp / "student.safetensors")
        after = scores(evaluate(student, held, progress=True))
    row = {
        "run": key,
        "images": len(held),
        "replay_tiles": others,
        **pseudo,
        "steps": record["steps"],
        "seconds": record["seconds"],
        "before": before,
        "after": after,
    }
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    for k in ("pixel_accuracy", "mean_iou", "mean_iou_land_cover"):
        print(f"{k}: {before[k]:.4f} -> {after[k]:.4f} ({after[k] - before[k]:+.4f})")


if __name__ == "__main__":
    main()
