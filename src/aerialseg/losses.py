"""Segmentation losses that skip ignored pixels.

``dice+focal`` mirrors the seed's ``sm.losses.DiceLoss(class_weights) +
sm.losses.CategoricalFocalLoss()`` (segmentation_models for Keras): soft Dice over the whole
batch per class, and focal loss with alpha 0.25, gamma 2 averaged over pixels *and* classes.

All terms are computed from one log-softmax and the probability of the true class, gathered per
pixel; no one-hot tensor is built (at 16 x 6 x 256 x 256 those copies cost as much as several
convolutions on a CPU).

torch is imported inside :func:`make_loss`, so the names in :data:`LOSSES` can be listed and
checked (command-line help, config checks) without importing it.
"""

from __future__ import annotations

from .classes import IGNORE_INDEX
from .errors import AerialSegError

LOSSES = ("dice+focal", "ce", "dice+focal+ce", "dice", "focal", "lovasz", "ce+lovasz")


def _dice(logp, logp_t, target, valid, weights, smooth=1e-5):
    probs = logp.exp()
    c = probs.shape[1]
    validf = valid.float().flatten()  # masks by weight, not boolean indexing (slow on CPU)
    t = target.flatten()
    inter = probs.new_zeros(c).index_add(0, t, logp_t.exp().flatten() * validf)
    if not bool(valid.all()):
        probs = probs * valid.unsqueeze(1)
    denom = probs.sum((0, 2, 3)) + t.bincount(weights=validf, minlength=c)[:c]
    score = (2 * inter + smooth) / (denom + smooth)
    if weights is not None:
        score = score * weights * len(weights) / weights.sum()
    return 1 - score.mean()


def _focal(logp_t, valid, num_classes, alpha=0.25, gamma=2.0):
    loss = -alpha * (1 - logp_t.exp()) ** gamma * logp_t
    # sm's CategoricalFocalLoss takes the mean over the class axis too, hence / C
    return (loss * valid).sum() / valid.sum().clamp_min(1) / num_classes


def _lovasz(logp, target, valid):
    """Lovász-softmax (Berman et al., 2018), over the batch's pixels, for the classes present:
    a convex surrogate of 1 - IoU, exactly 1 - IoU for one-hot predictions. Ignored pixels get
    error 0 and no foreground: sorted last, they add nothing to the loss or to the running
    intersection and union of the pixels before them (no boolean indexing, slow on a CPU)."""
    c = logp.shape[1]
    probs = logp.exp().permute(0, 2, 3, 1).flatten(0, 2)
    t, v = target.flatten(), valid.flatten()
    present = t.bincount(weights=v.float(), minlength=c)[:c] > 0
    losses = []
    for k in present.nonzero().flatten().tolist():
        fg = ((t == k) & v).float()
        errors, order = ((fg - probs[:, k]).abs() * v).sort(descending=True)
        fg = fg[order]
        jaccard = 1 - (fg.sum() - fg.cumsum(0)) / (fg.sum() + (1 - fg).cumsum(0))
        grad = jaccard.clone()  # the Jaccard loss gained by each pixel in error order
        grad[1:] -= jaccard[:-1]
        losses.append(errors @ grad)
    return sum(losses) / len(losses) if losses else logp.sum() * 0


def make_loss(name: str, weights=None, label_smoothing: float = 0.0):
    """Return ``loss(logits, target)`` for one of :data:`LOSSES`; ``weights`` per class
    (used by Dice and cross-entropy); ``label_smoothing`` for the cross-entropy term."""
    if name not in LOSSES:
        raise AerialSegError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    import torch.nn.functional as F

    parts = set(name.split("+"))

    def loss(logits, target):
        logp = logits.float().log_softmax(1)
        valid = target != IGNORE_INDEX
        safe = target.where(valid, 0)
        logp_t = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
        total = logp.new_zeros(())
        if "dice" in parts:
            total = total + _dice(logp, logp_t, safe, valid, weights)
        if "focal" in parts:
            total = total + _focal(logp_t, valid, logp.shape[1])
        if "lovasz" in parts:
            total = total + _lovasz(logp, safe, valid)
        if "ce" in parts and label_smoothing:
            # the target gets 1 - s and every class s / C: hand-drawn masks are wrong along
            # every boundary, and a hard target pushes the logits of those pixels without end.
            # log_softmax of logp is logp itself, so the log-probabilities can go in as logits.
            total = total + F.cross_entropy(
                logp, target, weight=weights, ignore_index=IGNORE_INDEX,
                label_smoothing=label_smoothing,
            )  # fmt: skip
        elif "ce" in parts:
            total = total + F.nll_loss(logp, target, weight=weights, ignore_index=IGNORE_INDEX)
        return total

    return loss
