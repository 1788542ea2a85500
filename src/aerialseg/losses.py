"""Segmentation losses that skip ignored pixels.

``dice+focal`` mirrors the seed's ``sm.losses.DiceLoss(class_weights) +
sm.losses.CategoricalFocalLoss()`` (segmentation_models for Keras): soft Dice over the whole
batch per class, and focal loss with alpha 0.25, gamma 2 averaged over pixels *and* classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .classes import IGNORE_INDEX
from .errors import AerialSegError

LOSSES = ("dice+focal", "ce", "dice+focal+ce", "dice", "focal")


def _valid(target: torch.Tensor, num_classes: int):
    valid = target != IGNORE_INDEX
    onehot = F.one_hot(torch.where(valid, target, 0), num_classes).permute(0, 3, 1, 2)
    return valid.unsqueeze(1), onehot.float()


def dice_loss(logits, target, weights=None, smooth=1e-5):
    probs = logits.float().softmax(1)
    valid, onehot = _valid(target, logits.shape[1])
    probs, onehot = probs * valid, onehot * valid
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    score = (2 * inter + smooth) / (denom + smooth)
    if weights is not None:
        score = score * weights * len(weights) / weights.sum()
    return 1 - score.mean()


def focal_loss(logits, target, alpha=0.25, gamma=2.0):
    logp = logits.float().log_softmax(1)
    valid = target != IGNORE_INDEX
    logp_t = logp.gather(1, torch.where(valid, target, 0).unsqueeze(1)).squeeze(1)
    loss = -alpha * (1 - logp_t.exp()) ** gamma * logp_t
    # sm's CategoricalFocalLoss takes the mean over the class axis too, hence / C
    return (loss * valid).sum() / valid.sum().clamp_min(1) / logits.shape[1]


def cross_entropy(logits, target, weights=None):
    return F.cross_entropy(logits.float(), target, weight=weights, ignore_index=IGNORE_INDEX)


def make_loss(name: str, weights: torch.Tensor | None = None):
    """Return ``loss(logits, target)`` for one of :data:`LOSSES`."""
    parts = name.split("+")
    if name not in LOSSES:
        raise AerialSegError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        if "dice" in parts:
            total = total + dice_loss(logits, target, weights)
        if "focal" in parts:
            total = total + focal_loss(logits, target)
        if "ce" in parts:
            total = total + cross_entropy(logits, target, weights)
        return total

    return loss
