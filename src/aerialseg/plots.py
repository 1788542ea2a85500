"""Pictures: training curves, example predictions with a legend, confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .classes import IGNORE_INDEX, ClassTable  # noqa: E402
from .io.files import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix[1:] or "png")
    plt.close(fig)
    return Path(path)


def legend_handles(classes: ClassTable, shares: Sequence[float] | None = None):
    return [
        Patch(
            facecolor=np.array(c) / 255,
            edgecolor="black",
            label=n if shares is None else f"{n} {shares[i]:.1%}",
        )
        for i, (n, c) in enumerate(zip(classes.names, classes.colors))
    ]


# (history key, line style, label) for the right-hand panel of the training curves
SEGMENTATION_CURVES = (
    ("train_jaccard", "y", "Training Jaccard"),
    ("val_jaccard", "r", "Validation Jaccard"),
    ("val_miou", "b--", "Validation mIoU"),
    ("val_accuracy", "g:", "Validation accuracy"),
)


def training_curves(
    history: Sequence[dict],
    path: str | Path,
    curves=SEGMENTATION_CURVES,
    title: str = "Training and validation IoU",
    ylabel: str = "IoU / accuracy",
) -> Path:
    """Loss (left) and the ``curves`` metrics (right) over epochs, like the seed's figures."""
    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(ep, [r["train_loss"] for r in history], "y", label="Training loss")
    a.plot(ep, [r["val_loss"] for r in history], "r", label="Validation loss")
    a.set(title="Training and validation loss", xlabel="Epochs", ylabel="Loss")
    for key, style, label in curves:
        b.plot(ep, [r[key] for r in history], style, label=label)
    b.set(title=title, xlabel="Epochs", ylabel=ylabel)
    for ax in (a, b):
        ax.legend()
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def examples(
    samples,
    predictions: Sequence[np.ndarray],
    classes: ClassTable,
    path: str | Path,
    dpi: int = 110,
) -> Path:
    """Rows of image | ground truth | prediction, with a class-colour legend."""
    n = len(samples)
    fig, axes = plt.subplots(n, 3, figsize=(12, 4 * n), squeeze=False)
    for row, s, pred in zip(axes, samples, predictions):
        labelled = s.labels != IGNORE_INDEX
        acc = float(np.mean(pred[labelled] == s.labels[labelled])) if labelled.any() else 0.0
        for ax, img, title in zip(
            row,
            (s.image, classes.colorize(s.labels), classes.colorize(pred)),
            (s.id, "Ground truth", f"Prediction (accuracy {acc:.3f})"),
        ):
            ax.imshow(img)
            ax.set_title(title)
            ax.axis("off")
    fig.legend(
        handles=legend_handles(classes), loc="lower center", ncol=len(classes), frameon=False
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_figure(fig, path, dpi)


def confusion_matrix(confusion: np.ndarray, classes: ClassTable, path: str | Path) -> Path:
    """Row-normalised confusion matrix (truth rows, prediction columns) with counts."""
    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 2, 1.1 * len(classes) + 1))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(classes)), classes.names, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes.names)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix (rows sum to 1)")
    return save_figure(fig, path)
