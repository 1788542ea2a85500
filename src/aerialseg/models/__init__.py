"""Model registry: ``create_model(name, **kwargs)``.

A name stands for a model class plus default arguments; keyword arguments override them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AerialSegError
from .base import Normalize, SegmentationModel
from .unet import UNet

_REGISTRY: dict[str, tuple[Callable[..., SegmentationModel], dict]] = {}


def register(name: str, factory: Callable[..., SegmentationModel], **defaults) -> None:
    _REGISTRY[name] = (factory, defaults)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> SegmentationModel:
    """Build a registered model; ``kwargs`` override the name's defaults."""
    if name not in _REGISTRY:
        raise AerialSegError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    factory, defaults = _REGISTRY[name]
    try:
        model = factory(**{**defaults, **kwargs})
    except TypeError as e:
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

__all__ = ["Normalize", "SegmentationModel", "UNet", "create_model", "list_models", "register"]
