"""Pictures: training curves, example predictions with a legend, confusion matrices.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered straight to files: no
pyplot state and no backend switch, so a notebook's or the app's own plotting is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .classes import IGNORE_INDEX, ClassTable
from .io.files import atomic_path


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Render ``fig`` to ``path`` (format from the suffix), atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix[1:] or "png")
    return Path(path)


def legend_handles(classes: ClassTable, shares: Sequence[float] | None = None):
    """Legend patches in the display colours (a transparent class: an empty box)."""
    return [
        Patch(
            facecolor=np.array(c) / 255,
            edgecolor="black",
            label=n if shares is None else f"{n} {shares[i]:.1%}",
        )
        for i, (n, c) in enumerate(zip(classes.names, classes.display))
    ]


def training_curves(
    history: Sequence[dict],
    path: str | Path,
    curves: Sequence[tuple[str, str, str]],
    title: str,
    ylabel: str,
) -> Path:
    """Loss (left) and the ``curves`` metrics, (history key, line style, label), on the right
    over epochs, like the seed's figures."""
    ep = [r["epoch"] for r in history]
    fig = Figure(figsize=(11, 4))
    a, b = fig.subplots(1, 2)
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
    fig = Figure(figsize=(12, 4 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for row, s, pred in zip(axes, samples, predictions):
        labelled = s.labels != IGNORE_INDEX
        acc = float(np.mean(pred[labelled] == s.labels[labelled])) if labelled.any() else 0.0
        for ax, img, title in zip(
            row,
            (s.image, classes.paint(s.labels), classes.paint(pred)),
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
    """Row-normalised confusion matrix (truth rows, prediction columns) with its shares
    printed; for many classes a plain heat map (CIFAR's 100 would need 10 000 numbers)."""
    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    if len(classes) > 20:
        fig = Figure(figsize=(10, 9))
        ax = fig.subplots()
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set(xlabel="Predicted class", ylabel="True class")
        ax.set_title("Confusion matrix (rows sum to 1)")
        fig.colorbar(im, ax=ax, fraction=0.046)
        return save_figure(fig, path)
    fig = Figure(figsize=(1.1 * len(classes) + 2, 1.1 * len(classes) + 1))
    ax = fig.subplots()
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
