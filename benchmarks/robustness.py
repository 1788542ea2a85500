"""How well a model holds up when the imagery differs a little: scale, colour, quality.

The images a model never trained on (as ``aerialseg evaluate`` picks them: on its own data,
its validation images or held-out tile) are scored as they are, then rescaled (labels by
nearest neighbour) and with colour and quality shifts of the kind other cameras and other
days give. Each row is pixel accuracy and land-cover mIoU over all those images, the drop
against the unchanged images measured in the same run, and the model's mean confidence (mean
top class probability). Images with no ground truth (all black, all white, two ordinary
photos from scikit-learn) show the class the model paints, on what share, and its confidence:
the out-of-distribution warning must separate those from the unchanged held-out images.

Each rescaled row is also scored as ``segment --input-gsd`` sees it: a user who gives the
imagery's metres per pixel has it resampled back to the model's resolution (row "..., at the
model's resolution").

    python benchmarks/robustness.py [--model M] [--data DIR] [--images N] [--only TEXT]
        [--json FILE]

Figure: the held-out-tile robustness table (worst drop under 16 perturbations) and the --input-
gsd rows, quoted in docs/results.md (the model); rows in docs/experiments/robustness-*.json.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from aerialseg.config import data_root
from aerialseg.data.segmentation import Sample, load_dataset
from aerialseg.inference.confidence import CONFIDENCE_FLOOR, unusual
from aerialseg.inference.evaluate import evaluate, images_to_score
from aerialseg.inference.segmenter import load_segmenter


def rescale(s: Sample, f: float) -> Sample:
    h, w = s.labels.shape
    size = (max(16, round(w * f)), max(16, round(h * f)))
    image = np.array(Image.fromarray(s.image).resize(size, Image.Resampling.BICUBIC))
    labels = np.array(Image.fromarray(s.labels).resize(size, Image.Resampling.NEAREST))
    return Sample(s.id, s.group, image, labels)


def colour(s: Sample, f) -> Sample:
    return Sample(s.id, s.group, np.asarray(f(Image.fromarray(s.image)).convert("RGB")), s.labels)


def white_balance(r: float, b: float):
    def f(im: Image.Image) -> Image.Image:
        a = np.asarray(im, dtype=np.float32) * np.array([r, 1.0, b], dtype=np.float32)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))

    return f


def gamma(g: float):
    lut = [round(255 * (i / 255) ** g) for i in range(256)] * 3
    return lambda im: im.point(lut)


def jpeg(quality: int):
    def f(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        return Image.open(buf)

    return f


SCALES = (0.5, 0.75, 1.5, 2.0)
PERTURBATIONS = {
    **{f"scale x{f:g}": (lambda s, f=f: rescale(s, f)) for f in SCALES},
    "warmer (R x1.15, B x0.85)": lambda s: colour(s, white_balance(1.15, 0.85)),
    "cooler (R x0.85, B x1.15)": lambda s: colour(s, white_balance(0.85, 1.15)),
    "saturation +30 %": lambda s: colour(s, lambda im: ImageEnhance.Color(im).enhance(1.3)),
    "saturation -30 %": lambda s: colour(s, lambda im: ImageEnhance.Color(im).enhance(0.7)),
    "brightness +20 %": lambda s: colour(s, lambda im: ImageEnhance.Brightness(im).enhance(1.2)),
    "brightness -20 %": lambda s: colour(s, lambda im: ImageEnhance.Brightness(im).enhance(0.8)),
    "contrast +20 %": lambda s: colour(s, lambda im: ImageEnhance.Contrast(im).enhance(1.2)),
    "contrast -20 %": lambda s: colour(s, lambda im: ImageEnhance.Contrast(im).enhance(0.8)),
    "gamma 0.8": lambda s: colour(s, gamma(0.8)),
    "gamma 1.25": lambda s: colour(s, gamma(1.25)),
    "JPEG quality 30": lambda s: colour(s, jpeg(30)),
    "blur (Gaussian r=1.5)": lambda s: colour(
        s, lambda im: im.filter(ImageFilter.GaussianBlur(1.5))
    ),
}


def unlabelled_images() -> dict[str, np.ndarray]:
    """Images with no aerial content: flat black and white, and scikit-learn's two sample
    photos (a temple, a flower) where the [baselines] extra is installed."""
    out = {f"all {n} 512x512": np.full((512, 512, 3), v, np.uint8) for n, v in BLANKS}
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return out
    data = load_sample_images()
    for name, image in zip(data.filenames, data.images):
        out[f"photo {name.rsplit('/', 1)[-1]}"] = np.ascontiguousarray(image)
    return out


BLANKS = (("black", 0), ("white", 255))


def warning_report(seg, rows, flat) -> None:
    """What segment's warning (inference/confidence.py) would say of each scored image: how
    many unchanged held-out images it flags (false alarms), how many perturbed ones, and how
    accurate the flagged and unflagged perturbed images were; and each image without ground
    truth (all of which it should flag). The dataset's images are never uniform, so for them the
    confidence alone decides."""
    floor = float(seg.meta.get("confidence_floor", CONFIDENCE_FLOOR))
    print(f"warning (mean confidence < {floor:.2f}, or a uniform image):")
    flagged = [i["confidence"] < floor for i in rows[0]["per_image"]]
    print(f"  unchanged held-out images flagged: {sum(flagged)}/{len(flagged)}")
    acc = {True: [], False: []}
    for r in rows[1:]:
        for i in r["per_image"]:
            acc[i["confidence"] < floor].append(i["pixel_accuracy"])
    n = len(acc[True]) + len(acc[False])
    mean = {k: f"{np.mean(v):.3f}" if v else "-" for k, v in acc.items()}
    print(
        f"  perturbed images flagged: {len(acc[True])}/{n} (mean pixel accuracy "
        f"{mean[True]} flagged, {mean[False]} not)"
    )
    hits = [f["warned"] for f in flat]
    print(f"  images without aerial content flagged: {sum(hits)}/{len(hits)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the bundled model)")
    ap.add_argument("--data", help="dataset root (default: $AERIALSEG_DATA)")
    ap.add_argument("--images", type=int, help="score only the first N chosen images")
    ap.add_argument("--only", help="only the perturbations whose name contains this")
    ap.add_argument("--json", help="write all rows here")
    args = ap.parse_args()
    data = data_root(args.data)
    seg = load_segmenter(args.model)
    samples, why = images_to_score(load_dataset(data, seg.classes), seg.meta, data)
    samples = samples[: args.images] if args.images else samples
    print(f"model: {seg.name}; {why}; scored: {len(samples)}")

    rows = []
    t0 = time.perf_counter()
    chosen = {k: v for k, v in PERTURBATIONS.items() if not args.only or args.only in k}
    runs = {"none": (seg, None), **{k: (seg, f) for k, f in chosen.items()}}
    for f in SCALES:  # --input-gsd: the model sees the image resampled by 1 / f
        if f"scale x{f:g}" in chosen:
            runs[f"scale x{f:g}, at the model's resolution"] = (
                seg.resampled(1 / f),
                PERTURBATIONS[f"scale x{f:g}"],
            )
    for name, (model, f) in runs.items():
        r = evaluate(model, samples if f is None else [f(s) for s in samples])
        rows.append(
            {
                "perturbation": name,
                "pixel_accuracy": r["pixel_accuracy"],
                "mean_iou_land_cover": r["mean_iou_land_cover"],
                "confidence": float(np.mean([i["confidence"] for i in r["per_image"]])),
                "per_image": r["per_image"],
            }
        )
    base = rows[0]
    print(
        f"{'perturbation':<28}{'pixel acc.':>11}{'drop':>8}{'mIoU (5)':>10}{'drop':>8}{'conf.':>7}"
    )
    for r in rows:
        r["accuracy_drop"] = base["pixel_accuracy"] - r["pixel_accuracy"]
        r["miou5_drop"] = base["mean_iou_land_cover"] - r["mean_iou_land_cover"]
        print(
            f"{r['perturbation']:<28}{r['pixel_accuracy']:>11.3f}{r['accuracy_drop']:>8.3f}"
            f"{r['mean_iou_land_cover']:>10.3f}{r['miou5_drop']:>8.3f}{r['confidence']:>7.3f}"
        )
    worst = max(rows[1:], key=lambda r: r["accuracy_drop"])
    print(f"worst drop: {worst['accuracy_drop']:.3f} pixel accuracy ({worst['perturbation']})")

    flat = []
    for name, image in unlabelled_images().items():
        probs = seg.predict_proba(image)
        counts = np.bincount(probs.argmax(-1).ravel(), minlength=len(seg.classes))
        top = int(counts.argmax())
        share, conf = counts[top] / counts.sum(), float(probs.max(-1).mean())
        warned = unusual(image, conf, seg.meta) is not None  # what segment would say
        flat.append(
            {
                "image": name,
                "class": seg.classes.names[top],
                "share": share,
                "confidence": conf,
                "warned": warned,
            }
        )
        print(f"{name}: painted {seg.classes.names[top]} on {share:.0%}, confidence {conf:.3f}")
    held = [i["confidence"] for i in base["per_image"]]
    print(f"confidence on the unchanged held-out images: {min(held):.3f} to {max(held):.3f}")
    warning_report(seg, rows, flat)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": seg.name, "scored": why, "rows": rows, "flat": flat}, f, indent=1)


if __name__ == "__main__":
    main()
