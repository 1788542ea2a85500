"""Using a trained image classifier: probabilities, evaluation, top-k, coarse patch maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..classes import IGNORE_INDEX, ClassTable
from ..data.imageset import ImageSet
from ..errors import AerialSegError
from ..metrics import classification_metrics
from ..models.checkpoint import load_checkpoint


def to_batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


@torch.inference_mode()
def predict_proba(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(N, C) class probabilities for (N, S, S, 3) uint8 images."""
    model.eval()
    out = [
        model(to_batch(images[i : i + batch_size])).float().softmax(1).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


@torch.inference_mode()
def evaluate_classifier(model, data: ImageSet, batch_size: int = 512, device: str = "cpu") -> dict:
    """The keys of ``aerialseg classify evaluate --json``, plus the mean cross-entropy."""
    model.eval()
    k = len(data.classes)
    cm = np.zeros((k, k), dtype=np.int64)
    loss = 0.0
    for i in range(0, len(data), batch_size):
        logits = model(to_batch(data.images[i : i + batch_size]).to(device)).float().cpu()
        y = torch.from_numpy(data.labels[i : i + batch_size])
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        cm += np.bincount(y.numpy() * k + logits.argmax(1).numpy(), minlength=k * k).reshape(k, k)
    return {**classification_metrics(cm, data.classes), "loss": loss / max(1, len(data))}


def load_classifier(path: str | Path):
    """(model in eval mode, classes, metadata) of a classifier checkpoint."""
    return load_checkpoint(path, task="classification")


def top_k(probs: np.ndarray, classes: ClassTable, k: int) -> list[list[tuple[str, float]]]:
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(classes.names[j], float(p[j])) for j in row] for p, row in zip(probs, order)]


def patch_map(model, rgb: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Label every pixel of a large image with its patch's predicted class: the classifier as
    a coarse segmenter. Pixels right/below the last whole patch get ``IGNORE_INDEX``."""
    s = model.input_size
    h, w = rgb.shape[:2]
    rows, cols = h // s, w // s
    if not rows or not cols:
        raise AerialSegError(f"image of {w}x{h} is smaller than one {s}x{s} patch")
    tiles = rgb[: rows * s, : cols * s].reshape(rows, s, cols, s, 3).swapaxes(1, 2)
    pred = predict_proba(model, tiles.reshape(-1, s, s, 3), batch_size).argmax(1)
    labels = np.full((h, w), IGNORE_INDEX, dtype=np.uint8)
    grid = pred.reshape(rows, cols).astype(np.uint8)
    labels[: rows * s, : cols * s] = np.kron(grid, np.ones((s, s), dtype=np.uint8))
    return labels
