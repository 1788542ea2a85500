"""Evaluation on whole images with the same metrics code as training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm import tqdm

from ..data.segmentation import Sample
from ..metrics import SegmentationMetrics
from .segmenter import Segmenter


def evaluate(
    seg: Segmenter, samples: Sequence[Sample], tta: bool = False, progress: bool = False
) -> dict:
    """Metrics over ``samples`` (whole images, predicted as ``aerialseg segment`` does):
    the keys of ``aerialseg evaluate --json``."""
    classes = seg.classes
    metrics = SegmentationMetrics(len(classes), classes.land_cover)
    for s in tqdm(
        samples, desc="evaluating", unit="img", disable=None if progress else True, leave=False
    ):
        probs = torch.from_numpy(seg.predict_proba(s.image, tta)).permute(2, 0, 1)
        metrics.update(torch.from_numpy(s.labels).long().unsqueeze(0), probs.unsqueeze(0))
    m = metrics.compute()
    return {
        "pixel_accuracy": m["pixel_accuracy"],
        "mean_iou": m["mean_iou"],
        "mean_iou_land_cover": m["mean_iou_land_cover"],
        "micro_jaccard": m["micro_jaccard"],
        "per_class_iou": dict(zip(classes.names, m["per_class_iou"])),
        "confusion_matrix": metrics.confusion.tolist(),
        "images": [s.id for s in samples],
    }


def format_table(result: dict) -> str:
    """The human-readable report of ``aerialseg evaluate``."""
    lines = [f"{'class':<14}{'IoU':>8}"]
    for name, iou in result["per_class_iou"].items():
        lines.append(f"{name:<14}{'-' if iou != iou else f'{iou:.4f}':>8}")
    lines += [
        "",
        f"{'mIoU (all classes)':<28}{result['mean_iou']:.4f}",
        f"{'mIoU (land cover)':<28}{result['mean_iou_land_cover']:.4f}",
        f"{'pixel accuracy':<28}{result['pixel_accuracy']:.4f}",
        f"{'micro Jaccard (seed metric)':<28}{result['micro_jaccard']:.4f}",
        f"images: {len(result['images'])}",
    ]
    return "\n".join(lines)
