"""Does the unfamiliar-imagery warning separate other places from Dubai's held-out images?

Scores with :mod:`aerialseg.inference.familiarity` (as ``segment`` does: plain images whole,
GeoTIFFs through a RasterSource at their own pixel size), against the checkpoint's own
reference and threshold:

- the model's held-out Dubai images (its metadata's ``val_images``): false alarms;
- the other places (2 labelled OpenEarthMap scenes + 7 unlabelled orthophotos): hits;
- synthetic inputs: grey noise and a white "document" with black text lines (foreign), and
  three held-out images with the hue turned 90° (not foreign in kind: reported, not scored).

It also times the distance against segmenting a 1024² scene, at one thread.

``--write-reference`` first computes the reference from the model's TRAINING images (the
dataset's images not in ``val_images``) and stores it in the checkpoint (tensors unchanged):
how the bundled model's reference was made.

    python benchmarks/warning.py [--model M] [--data DUBAI] [--other OTHER_PLACES]
        [--write-reference] [--json FILE]

Data default to $AERIALSEG_DATA and ../shared/datasets/{dubai-aerial,other-places} beside
the repository; what is absent is skipped.

Figure: the unfamiliar-imagery warning table (distances, flagged counts, cost), quoted in
docs/results.md and docs/tutorials/new_place.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aerialseg.classes import DUBAI
from aerialseg.data.segmentation import load_dataset
from aerialseg.gis.rasters import RasterSource
from aerialseg.inference.familiarity import (
    KEY,
    feature_reference,
    image_familiarity,
    raster_familiarity,
)
from aerialseg.inference.segmenter import DEFAULT_MODEL, load_segmenter
from aerialseg.models.checkpoint import load_checkpoint, update_metadata

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def hue_rotated(rgb: np.ndarray, degrees: float = 90) -> np.ndarray:
    hsv = np.array(Image.fromarray(rgb).convert("HSV"))
    hsv[..., 0] += np.uint8(round(degrees / 360 * 256) % 256)  # wraps around, as hue does
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def synthetic() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    noise = np.clip(128 + rng.normal(0, 40, (1024, 1024, 1)), 0, 255).astype(np.uint8)
    doc = np.full((1024, 1024, 3), 250, np.uint8)
    for y in range(80, 980, 28):  # lines of "words": dark runs with gaps
        end = 900 - int(rng.integers(0, 300))
        doc[y : y + 9, 80:end] = 20
        for x in range(80, end, int(rng.integers(30, 60))):
            doc[y : y + 9, x : x + 6] = 250
    return {"grey noise": noise.repeat(3, 2), "document (text lines)": doc}


def write_reference(model_path: Path, data: Path, held: set[str]) -> dict:
    model, _, _ = load_checkpoint(model_path)
    train = [s.image for s in load_dataset(data, DUBAI) if s.id not in held]
    t = time.perf_counter()
    ref = feature_reference(model, train)
    print(f"reference from {len(train)} training images in {time.perf_counter() - t:.1f} s")
    update_metadata(model_path, **{KEY: ref})
    return ref


def rows_for(seg, data: Path | None, other: Path | None) -> list[dict]:
    rows = []

    def add(name, kind, near):
        d, t = near
        rows.append({"image": name, "kind": kind, "distance": d, "threshold": t, "flagged": d > t})

    held = set(seg.meta.get("val_images") or [])
    if data and data.is_dir():
        val = [s for s in load_dataset(data, DUBAI) if s.id in held]
        for s in val:
            add(s.id, "dubai held-out", image_familiarity(seg, s.image))
        for s in val[:3]:
            add(f"{s.id}, hue +90°", "hue-rotated", image_familiarity(seg, hue_rotated(s.image)))
    if other and other.is_dir():
        scenes = sorted(other.glob("labelled/*/images/*.tif"))
        for p in scenes + sorted(other.glob("unlabelled/*.tif")):
            with RasterSource(p) as src:
                add(p.name, "other place", raster_familiarity(seg, src))
    for name, rgb in synthetic().items():
        add(name, "synthetic", image_familiarity(seg, rgb))
    return rows


def timing(seg, other: Path | None) -> str:
    """Seconds to segment a 1024² scene, and to measure its distance, best of 3."""
    path = other / "labelled" / "oem" / "images" / "houston_16.tif" if other else None
    if not path or not path.is_file():
        rgb = synthetic()["grey noise"]
    else:
        with RasterSource(path) as src:
            rgb = src.read_all()[0]
    best = {}
    calls = {
        "segment": lambda: seg.segment_confidence(rgb),
        "distance": lambda: image_familiarity(seg, rgb),
    }
    for what, call in calls.items():
        times = []
        for _ in range(3):
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        best[what] = min(times)
    return (
        f"{rgb.shape[1]}x{rgb.shape[0]} scene, 1 thread, precision {seg.precision}: segment "
        f"{best['segment']:.2f} s, distance {best['distance']:.2f} s "
        f"(+{100 * best['distance'] / best['segment']:.0f} %)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    env = os.environ.get("AERIALSEG_DATA")
    ap.add_argument("--data", type=Path, default=Path(env) if env else SHARED / "dubai-aerial")
    ap.add_argument("--other", type=Path, default=SHARED / "other-places")
    ap.add_argument("--write-reference", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.write_reference:
        from aerialseg.models.checkpoint import read_metadata

        held = set(read_metadata(args.model).get("val_images") or [])
        write_reference(args.model, args.data, held)
    seg = load_segmenter(args.model, device="cpu")
    if KEY not in seg.meta:
        raise SystemExit(f"{args.model}: no feature reference (run with --write-reference)")
    rows = rows_for(seg, args.data, args.other)
    print("| image | kind | distance | threshold | flagged |\n|---|---|---|---|---|")
    for r in rows:
        flag = "yes" if r["flagged"] else "no"
        print(
            f"| {r['image']} | {r['kind']} | {r['distance']:.3f} | {r['threshold']:.3f} | {flag} |"
        )
    for kind, what in (("other place", "hit rate"), ("synthetic", "hit rate")):
        hits = [r["flagged"] for r in rows if r["kind"] == kind]
        if hits:
            print(f"{kind}: {what} {sum(hits)}/{len(hits)}")
    for kind in ("dubai held-out", "hue-rotated"):
        hits = [r["flagged"] for r in rows if r["kind"] == kind]
        if hits:
            print(f"{kind}: flagged {sum(hits)}/{len(hits)}")
    if not args.no_timing:
        print(timing(seg, args.other))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
