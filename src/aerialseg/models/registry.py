"""The model registry: a name stands for a model class plus default arguments.

Classes are named as ``"module:Class"`` strings and imported on first use, so listing or
checking names (``aerialseg models``, a typo in ``--arch``) costs no torch import.
Every name has a task: "segmentation" (pixels -> labels) or "classification" (image -> label).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import AerialSegError

if TYPE_CHECKING:
    from .base import BaseModel

TASKS = ("segmentation", "classification")
_REGISTRY: dict[str, tuple[str, dict, str]] = {}


def register(name: str, factory: str, task: str = "segmentation", **defaults) -> None:
    """Register ``name`` for the class ``factory`` ("module:Class", module relative to
    ``aerialseg.models``) built with ``defaults``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    _REGISTRY[name] = (factory, defaults, task)


def list_models(task: str | None = "segmentation") -> list[str]:
    """Registered names for ``task``; None lists every name. Segmentation is the default
    because that is what ``train``, ``segment`` and the model tests take."""
    return sorted(n for n, (_, _, t) in _REGISTRY.items() if task is None or t == task)


def model_task(name: str) -> str | None:
    return _REGISTRY[name][2] if name in _REGISTRY else None


def check_name(name: str, task: str | None = "segmentation") -> None:
    """One clear error listing the valid names when ``name`` is not a ``task`` model."""
    if name not in list_models(task):
        kind = f"{task} model" if task else "model"
        raise AerialSegError(f"unknown {kind} {name!r}; valid: {', '.join(list_models(task))}")


def _class(name: str):
    check_name(name, None)
    module, cls = _REGISTRY[name][0].split(":")
    return getattr(importlib.import_module(f".{module}", __package__), cls)


def check_settings(name: str, settings: dict) -> None:
    """One clear error, before any work, when model ``name`` takes none of some ``settings``
    (e.g. --base-filters, a U-Net's, given to unet-effl0)."""
    import inspect

    takes = [p for p in inspect.signature(_class(name)).parameters if p != "self"]
    bad = [k for k in settings if k not in takes]
    if bad:
        flags = ", ".join(f"{k} (--{k.replace('_', '-')})" for k in bad)
        raise AerialSegError(
            f"model {name!r} takes no {flags}; its settings: {', '.join(takes)} "
            "(`aerialseg models` lists each model's)"
        )


def create_model(name: str, **kwargs) -> BaseModel:
    """Build a registered model; ``kwargs`` override the name's defaults."""
    build = _class(name)
    defaults = _REGISTRY[name][1]
    try:
        model = build(**{**defaults, **kwargs})
    except (TypeError, ValueError) as e:
        raise AerialSegError(f"model {name!r}: {e}") from None
    model.name = name
    return model


# The seed paper's network exactly: 16-32-64-128-256 filters, dropout 0.2 (0.3 at the bottom).
register(
    "unet-seed",
    "unet:UNet",
    base_filters=16,
    depth=4,
    batch_norm=False,
    dropout=0.2,
    bottleneck_dropout=0.3,
)
# The same shape with batch norm instead of dropout, which trains far faster (the default
# until the pretrained encoder below beat it on held-out tiles).
register(
    "unet",
    "unet:UNet",
    base_filters=16,
    depth=4,
    batch_norm=True,
    dropout=0.0,
    bottleneck_dropout=0.0,
)
# EfficientNet-Lite0 encoder (ImageNet weights with pretrained=True) + a light U-Net decoder:
# the bundled model's architecture, and train's default until 2026-12-06.
register("unet-effl0", "efficientnet:EfficientUNet")
# The same with the deeper Lite1 and deeper, wider Lite2 encoders (their ImageNet weights: the
# `lite` extra), to measure whether a bigger encoder pays (docs/experiments.md).
register("unet-effl1", "efficientnet:EfficientUNet", variant="lite1")
register("unet-effl2", "efficientnet:EfficientUNet", variant="lite2")
# The same with the encoder's batch norms folded into its convs and frozen at their ImageNet
# statistics: training steps 1.08-1.15x cheaper on a CPU, but worse on held-out Tile 5, so not
# the default (docs/experiments.md, "Frozen encoder batch norm").
register("unet-effl0-fbn", "efficientnet:EfficientUNet", encoder_bn=False)
# train's default: the same with a three-step decoder, logits at stride 4 upsampled
# bilinearly, no stride-2 skip. Its training step is ~1.2x cheaper on a CPU (3.3-3.4x the
# paper's Keras step against unet-effl0's 2.8x), and with the full recipe it scored as
# unet-effl0 on both held-out tiles (docs/experiments.md, "Decoder convs without the
# upsampled map").
register("unet-effl0-s4", "efficientnet:EfficientUNet", decoder=(96, 64, 48))

# The ISLR2 lab's CIFAR-100 network (section 10.9.3) and the seed paper's variant of it.
register("cnn-islr", "cnn:CNNClassifier", task="classification", blocks=4, dropout=0.5)
register("cnn-seed", "cnn:CNNClassifier", task="classification", blocks=3, dropout=0.65)
