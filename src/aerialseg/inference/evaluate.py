"""Evaluation on whole images with the same metrics code as training.

Which images to score is decided before anything heavy is imported (torch is imported inside
:func:`evaluate`), so a wrong folder or split is reported at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AerialSegError

if TYPE_CHECKING:
    from ..data.segmentation import Sample
    from .segmenter import Segmenter


def evaluate(
    seg: Segmenter, samples: Sequence[Sample], tta: bool = False, progress: bool = False
) -> dict:
    """Metrics over ``samples`` (whole images, predicted as ``aerialseg segment`` does):
    the keys of ``aerialseg evaluate --json``."""
    import torch
    from tqdm import tqdm

    from ..metrics import SegmentationMetrics, agreement

    classes = seg.classes
    metrics = SegmentationMetrics(len(classes), classes.land_cover)
    per_image = []
    for s in tqdm(
        samples, desc="evaluating", unit="img", disable=None if progress else True, leave=False
    ):
        probs = torch.from_numpy(seg.predict_proba(s.image, tta)).permute(2, 0, 1)
        one = SegmentationMetrics(len(classes), classes.land_cover)
        one.update(torch.from_numpy(s.labels).long().unsqueeze(0), probs.unsqueeze(0))
        metrics.add(one)
        r = one.compute()
        keys = ("pixel_accuracy", "mean_iou", "mean_iou_land_cover", "pixels")
        # how sure the model was (mean top probability): the signal of its out-of-distribution
        # warning, kept per image so it can be checked against the accuracy
        confidence = float(probs.max(0).values.mean())
        per_image.append({"image": s.id, **{k: r[k] for k in keys}, "confidence": confidence})
    m = metrics.compute()
    return {
        "pixel_accuracy": m["pixel_accuracy"],
        "mean_iou": m["mean_iou"],
        "mean_iou_land_cover": m["mean_iou_land_cover"],
        "micro_jaccard": m["micro_jaccard"],
        "per_class_iou": dict(zip(classes.names, m["per_class_iou"])),
        **agreement(metrics.confusion.numpy(), classes.names),  # kappa, user's, producer's
        "confusion_matrix": metrics.confusion.tolist(),
        "images": [s.id for s in samples],
        "per_image": per_image,  # which images pull the figures down
    }


def format_table(result: dict) -> str:
    """The human-readable report of ``aerialseg evaluate``."""
    lines = [f"{'class':<14}{'IoU':>8}{'user':>8}{'producer':>10}"]
    users, producers = result["users_accuracy"], result["producers_accuracy"]
    for name, iou in result["per_class_iou"].items():
        cells = [_figure(iou), _figure(users[name]), _figure(producers[name])]
        lines.append(f"{name:<14}{cells[0]:>8}{cells[1]:>8}{cells[2]:>10}")
    lines += [
        "(user's accuracy = precision, producer's = recall; -: no pixel)",
        "",
        f"{'mIoU (all classes)':<28}{result['mean_iou']:.4f}",
        f"{'mIoU (land cover)':<28}{result['mean_iou_land_cover']:.4f}",
        f"{'pixel accuracy':<28}{result['pixel_accuracy']:.4f}",
        f"{'micro Jaccard (seed metric)':<28}{result['micro_jaccard']:.4f}",
        f"{'Cohen kappa':<28}{_figure(result['kappa'])}",
        f"images: {len(result['images'])}",
    ]
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


SPLITS = ("auto", "val", "all")


def images_to_score(
    samples: Sequence[Sample],
    meta: dict,
    data: str | Path,
    split: str = "auto",
    files: dict[str, Path] | None = None,
) -> tuple[list[Sample], str]:
    """The images ``aerialseg evaluate`` scores, and a line saying which and why.

    ``auto`` scores only what the model did not train on: on its own training data (the same
    folder, or one holding its validation images) that is its validation images, on any other
    folder every image. ``val`` insists on the validation images; ``all`` takes every image,
    training images included, which flatters the figures. ``files``: the image file of each
    sample id, where the samples are not the image/mask pairs of ``data`` (vector labels).
    """
    if split not in SPLITS:
        raise AerialSegError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    held = set(meta.get("val_images") or [])
    ids = {s.id for s in samples}
    trained_on = meta.get("train_config", {}).get("data")
    own = bool(held & ids) or (
        trained_on is not None and Path(trained_on).resolve() == Path(data).resolve()
    )
    painted = finetuned_on(meta, data, samples, files)
    if painted and split != "all":
        # a fine-tune learned from these images' strokes: they are not held out any more
        samples = [s for s in samples if s.id not in painted]
        if not samples:
            raise AerialSegError(f"every image in {data} fine-tuned this model (--split all)")
    n = len(samples)
    left_out = f"; {len(painted)} that fine-tuned it left out" if painted and split != "all" else ""
    if split == "all":
        note = " (training images included: figures are optimistic)" if own or painted else ""
        return list(samples), f"scoring all {n} images{note}"
    if meta.get("split") == "random-patch" and own:
        if split == "val":
            raise AerialSegError(
                "this model was trained on a random patch split: every image was partly seen "
                "in training, so there is no held-out image (use --split all)"
            )
        return list(samples), (
            f"scoring all {n} images: this model trained on random patches of every image, "
            "so none is held out (figures are optimistic)"
        )
    if split == "val" or own:
        chosen = [s for s in samples if s.id in held]
        if not chosen:
            raise AerialSegError(f"none of the model's validation images are in {data}")
        return chosen, (
            f"scoring the model's {len(chosen)} held-out validation images of {n} "
            f"(the others trained it{left_out}; --split all scores every image)"
        )
    return list(samples), (
        f"scoring all {n} images (the model never trained on this data{left_out})"
    )


def finetuned_on(
    meta: dict, data: str | Path, samples: Sequence[Sample], files: dict[str, Path] | None = None
) -> set[str]:
    """Ids of the ``samples`` whose image file a fine-tune of this model (or of one of its
    parents) learned from. The record names those files by size and SHA-256, not by path or
    stem: the user's copies lie elsewhere, under the same stems as images of other tiles."""
    wanted, record = set(), meta.get("finetune")
    while record:
        wanted |= {(i["bytes"], i["sha256"]) for i in record.get("images", []) if "sha256" in i}
        record = (record.get("parent") or {}).get("finetune")
    if not wanted:
        return set()
    from ..data.segmentation import find_pairs
    from ..io.files import file_digest

    if files is None:
        files = {p.id: p.image for p in find_pairs(data)}
    ids, sizes = {s.id for s in samples}, {size for size, _ in wanted}
    return {
        i
        for i, image in files.items()
        if i in ids
        and image.stat().st_size in sizes  # only files of a recorded size are read
        and (image.stat().st_size, file_digest(image)) in wanted
    }
