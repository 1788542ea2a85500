"""What every aerialseg network shares: input normalisation inside the model, and ``predict``."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """Maps raw RGB (0-255 floats) to the network's input scale.

    Kept inside the model so a checkpoint carries it: ``meanstd`` uses the training set's
    per-channel statistics; ``minmax`` rescales every input (patch, window) per channel to 0-1,
    as the seed's MinMaxScaler did.
    """

    def __init__(self, kind: str = "meanstd", mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0)):
        super().__init__()
        if kind not in ("meanstd", "minmax"):
            raise ValueError(f"unknown normalisation {kind!r}")
        self.kind = kind
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "minmax":
            lo = x.amin(dim=(2, 3), keepdim=True)
            hi = x.amax(dim=(2, 3), keepdim=True)
            return (x - lo) / (hi - lo).clamp_min(1e-6)
        return (x - self.mean) / self.std

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }


class SegmentationModel(nn.Module):
    """Base class: ``forward`` takes raw RGB (N, 3, H, W) on the 0-255 scale and returns logits
    (N, C, H, W). ``config`` holds the registry name and keyword arguments that rebuild it."""

    name: str = ""

    def __init__(self, num_classes: int, normalization: dict | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.normalize = Normalize(**(normalization or {}))
        self.kwargs: dict = {}

    @property
    def config(self) -> dict:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "normalization": self.normalize.config(),
            **self.kwargs,
        }

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, C, H, W) in eval mode, without autograd."""
        if self.training:
            self.eval()
        return torch.softmax(self(x).float(), dim=1)
