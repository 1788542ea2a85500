"""Model registry: ``create_model(name, **kwargs)``.

A name stands for a model class plus default arguments; keyword arguments override them.
Every name has a task: "segmentation" (pixels -> labels) or "classification" (image -> label).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AerialSegError
from .base import BaseModel, Normalize, SegmentationModel
from .cnn import CNNClassifier
from .unet import UNet

TASKS = ("segmentation", "classification")
_REGISTRY: dict[str, tuple[Callable[..., BaseModel], dict, str]] = {}


def register(
    name: str, factory: Callable[..., BaseModel], task: str = "segmentation", **defaults
) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    _REGISTRY[name] = (factory, defaults, task)


def list_models(task: str | None = "segmentation") -> list[str]:
    """Registered names for ``task``; None lists every name. Segmentation is the default
    because that is what ``train``, ``segment`` and the model tests take."""
    return sorted(n for n, (_, _, t) in _REGISTRY.items() if task is None or t == task)


def model_task(name: str) -> str | None:
    return _REGISTRY[name][2] if name in _REGISTRY else None


def create_model(name: str, **kwargs) -> BaseModel:
    """Build a registered model; ``kwargs`` override the name's defaults."""
    if name not in _REGISTRY:
        raise AerialSegError(f"unknown model {name!r}; valid names: {', '.join(list_models(None))}")
    factory, defaults, _ = _REGISTRY[name]
    try:
        model = factory(**{**defaults, **kwargs})
    except (TypeError, ValueError) as e:
        raise AerialSegError(f"model {name!r}: {e}") from None
    model.name = name
    return model


# The seed paper's network exactly: 16-32-64-128-256 filters, dropout 0.2 (0.3 at the bottom).
register(
    "unet-seed",
    UNet,
    base_filters=16,
    depth=4,
    batch_norm=False,
    dropout=0.2,
    bottleneck_dropout=0.3,
)
# Our default: the same shape with batch norm instead of dropout, which trains far faster.
register(
    "unet", UNet, base_filters=16, depth=4, batch_norm=True, dropout=0.0, bottleneck_dropout=0.0
)

# The ISLR2 lab's CIFAR-100 network (section 10.9.3) and the seed paper's variant of it.
register("cnn-islr", CNNClassifier, task="classification", blocks=4, dropout=0.5)
register("cnn-seed", CNNClassifier, task="classification", blocks=3, dropout=0.65)

__all__ = [
    "TASKS",
    "CNNClassifier",
    "Normalize",
    "BaseModel",
    "SegmentationModel",
    "UNet",
    "create_model",
    "list_models",
    "model_task",
    "register",
]
