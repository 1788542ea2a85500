"""Models: the registry (``create_model(name, **kwargs)``, ``list_models``), the base classes
(normalisation inside the model, ``predict``) and the networks.

The network classes are imported on first access, so ``import aerialseg.models`` for the
registry does not import torch.
"""

from __future__ import annotations

import importlib

from .registry import TASKS, check_name, create_model, list_models, model_task, register

_LAZY = {
    "BaseModel": "base",
    "Normalize": "base",
    "SegmentationModel": "base",
    "fold_batchnorm": "base",
    "UNet": "unet",
    "CNNClassifier": "cnn",
    "EfficientUNet": "efficientnet",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TASKS",
    "check_name",
    "create_model",
    "list_models",
    "model_task",
    "register",
    *_LAZY,
]
