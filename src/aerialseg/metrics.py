"""Metrics, all from one confusion matrix (plus the seed's soft Jaccard).

- pixel accuracy: correct / labelled pixels;
- per-class IoU: TP / (TP + FP + FN);
- mean IoU: over classes that occur in the labels or the predictions, like Keras ``MeanIoU``;
- land-cover mean IoU: the same without background classes (Unlabeled);
- micro Jaccard: the seed's ``jaccard_coef`` - all one-hot pixels flattened, with softmax
  probabilities as the prediction: sum(p_true) / (2N - sum(p_true)). It is accumulated over all
  pixels rather than averaged per batch as Keras did, so it does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .classes import IGNORE_INDEX, ClassTable


class SegmentationMetrics:
    SUMMED = ("confusion", "p_true", "loss_sum", "loss_weight")  # what DDP sums over ranks

    def __init__(self, num_classes: int, land_cover: Sequence[int] | None = None):
        self.num_classes = num_classes
        self.land_cover = list(land_cover) if land_cover is not None else list(range(num_classes))
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.p_true = 0.0  # sum of the probability given to the true class
        self.loss_sum = 0.0
        self.loss_weight = 0

    def update(self, target: torch.Tensor, probs_or_pred: torch.Tensor, loss: float | None = None):
        """``target`` (N, H, W) labels; ``probs_or_pred`` (N, C, H, W) probabilities or
        (N, H, W) predicted labels (then the soft Jaccard uses the hard prediction)."""
        valid = target != IGNORE_INDEX
        t = target[valid]
        if probs_or_pred.dim() == target.dim() + 1:
            probs = probs_or_pred.float()
            pred = probs.argmax(1)[valid]
            safe = torch.where(valid, target, 0).unsqueeze(1)
            self.p_true += float(probs.gather(1, safe).squeeze(1)[valid].sum())
        else:
            pred = probs_or_pred[valid]
            self.p_true += float((pred == t).sum())
        k = self.num_classes
        self.confusion += torch.bincount(t * k + pred, minlength=k * k).view(k, k).cpu()
        if loss is not None:
            self.loss_sum += loss * int(valid.sum())
            self.loss_weight += int(valid.sum())

    def add(self, other: SegmentationMetrics) -> None:
        """Fold in what ``other`` counted (e.g. one image's metrics into a dataset's)."""
        self.confusion += other.confusion
        self.p_true += other.p_true
        self.loss_sum += other.loss_sum
        self.loss_weight += other.loss_weight

    def compute(self) -> dict:
        return summarize(
            self.confusion.numpy(),
            self.land_cover,
            self.p_true,
            self.loss_sum / self.loss_weight if self.loss_weight else None,
        )


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN where the class is in neither labels nor predictions."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def summarize(
    confusion: np.ndarray,
    land_cover: Sequence[int],
    p_true: float | None = None,
    loss: float | None = None,
) -> dict:
    """Metrics from a confusion matrix (rows = truth, columns = prediction)."""
    n = int(confusion.sum())
    iou = iou_per_class(confusion)
    lc = iou[list(land_cover)]
    out = {
        "pixel_accuracy": float(np.trace(confusion) / n) if n else float("nan"),
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "mean_iou_land_cover": float(np.nanmean(lc)) if np.isfinite(lc).any() else float("nan"),
        "per_class_iou": iou.tolist(),
        "pixels": n,
    }
    if p_true is not None:
        out["micro_jaccard"] = float(p_true / (2 * n - p_true)) if n else float("nan")
    if loss is not None:
        out["loss"] = float(loss)
    return out


def agreement(confusion: np.ndarray, names: Sequence[str]) -> dict:
    """The accuracy assessment of remote sensing, from the same confusion matrix (rows =
    reference, columns = map): Cohen's kappa (agreement beyond chance), and per class the
    user's accuracy (precision: how often a pixel mapped as the class is that class) and the
    producer's accuracy (recall: how much of the class was mapped as it). None where a class
    was never mapped (user's) or is not in the reference (producer's)."""
    cm = np.asarray(confusion, dtype=np.float64)
    n, mapped, reference = cm.sum(), cm.sum(0), cm.sum(1)
    chance = float((mapped * reference).sum() / n**2) if n else float("nan")
    observed = float(np.trace(cm) / n) if n else float("nan")
    kappa = (observed - chance) / (1 - chance) if n and chance < 1 else float("nan")

    def share(total):
        return {k: (float(cm[i, i] / total[i]) if total[i] else None) for i, k in enumerate(names)}

    return {
        "kappa": float(kappa),
        "users_accuracy": share(mapped),
        "producers_accuracy": share(reference),
    }


def classification_metrics(confusion: np.ndarray, classes: ClassTable) -> dict:
    """Accuracy, per-class accuracy (recall; None where a class has no images) and the
    confusion matrix (rows = truth, columns = prediction)."""
    cm = np.asarray(confusion, dtype=np.int64)
    n, rows = int(cm.sum()), cm.sum(1)
    per_class = {
        name: (float(cm[i, i] / rows[i]) if rows[i] else None)
        for i, name in enumerate(classes.names)
    }
    present = [v for v in per_class.values() if v is not None]
    return {
        "accuracy": float(np.trace(cm) / n) if n else float("nan"),
        "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
        "per_class_accuracy": per_class,
        "confusion_matrix": cm.tolist(),
        "images": n,
    }
