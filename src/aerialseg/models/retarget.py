"""A model re-aimed at another class table: one output per class of the user's legend.

Every segmentation network here ends in a 1x1 convolution ``model.head`` (``unet`` and
``unet-effl0`` alike): one row of weights (and a bias) per class, on features that know
nothing of class names. So a new legend only needs a new head: the rows of classes the model
already knows are copied by name, so their logits stay exactly what they were, and only the
rows of new classes have to be learnt (``aerialseg finetune --classes``). With no new class it
is a pure re-ordering or selection of outputs (``segment`` / ``evaluate --classes``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..classes import ClassTable, match_names
from ..errors import AerialSegError
from .base import BaseModel

NEW_ROW_NOISE = 1e-2
"""Std of the noise on a new class's row, as a share of the std of the parent's rows."""


def retarget(model: BaseModel, model_classes: ClassTable, table: ClassTable, seed: int = 0):
    """A copy of ``model`` (whose outputs are ``model_classes``) with one output per class of
    ``table``, in the table's order. Known classes (same name in any case) keep their weights
    and bias exactly; classes the model lacks start at the *mean* of the parent's rows plus a
    little seeded noise, bias the mean bias: their logit is then the mean logit of the parent's
    classes on every pixel. Why not zero: a zero logit may lie above every trained logit
    (a new class would take pixels before learning anything) or far below them (its gradient
    would vanish); the mean sits below the winning class everywhere, so the parent's map is
    unchanged at the start, yet close enough for the strokes to lift it. The noise makes
    several new classes differ from the first step. Classes of the model that the table
    leaves out are dropped. The copy rebuilds from its checkpoint (``num_classes`` follows)."""
    head = _head(model, model_classes)
    rows = match_names(table, model_classes)
    new = nn.Conv2d(head.in_channels, len(table), 1, bias=head.bias is not None)
    new = new.to(device=head.weight.device, dtype=head.weight.dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = head.weight
        noise_std = NEW_ROW_NOISE * float(w.std()) if w.shape[0] > 1 else NEW_ROW_NOISE
        for i, j in enumerate(rows):
            if j is not None:
                new.weight[i] = w[j]
            else:
                noise = torch.randn(w.shape[1:], generator=gen) * noise_std
                new.weight[i] = w.mean(0) + noise.to(w.device, w.dtype)
            if new.bias is not None:
                new.bias[i] = head.bias[j] if j is not None else head.bias.mean()
    out = copy.deepcopy(model)
    out.head = new
    out.num_classes = len(table)
    return out


def _head(model: BaseModel, classes: ClassTable) -> nn.Conv2d:
    """The model's final 1x1 convolution, checked to give one output per class."""
    head = getattr(model, "head", None)
    if not (isinstance(head, nn.Conv2d) and head.kernel_size == (1, 1) and head.groups == 1):
        raise AerialSegError(
            f"a {model.name} model has no 1x1 class head: its classes cannot be changed"
        )
    if head.out_channels != len(classes):
        raise AerialSegError(
            f"the model has {head.out_channels} outputs but its class table {len(classes)} classes"
        )
    return head
