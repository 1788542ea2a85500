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


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """For inference: fold every BatchNorm2d that directly follows a Conv2d into the conv's
    weights and replace it by Identity. Same outputs in eval mode, one pass over the
    activations less per conv (~15 % of a U-Net forward on a CPU). The pairs: neighbours in
    a Sequential, and the attribute names a module lists in ``conv_bn_pairs`` (where
    ``forward`` calls them by name, as EfficientNet's blocks do)."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    _fold(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
        for conv, bn in getattr(module, "conv_bn_pairs", ()):
            if hasattr(module, conv) and isinstance(getattr(module, bn), nn.BatchNorm2d):
                _fold(getattr(module, conv), getattr(module, bn))
                setattr(module, bn, nn.Identity())
    return model


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


class BaseModel(nn.Module):
    """What every registered network shares: ``forward`` takes raw RGB (N, 3, H, W) on the
    0-255 scale and returns class logits along dim 1; the input normalisation lives inside;
    ``config`` holds the registry name and keyword arguments that rebuild the model."""

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
        """Class probabilities in eval mode, without autograd."""
        if self.training:
            self.eval()
        return torch.softmax(self(x).float(), dim=1)


class SegmentationModel(BaseModel):
    """A network whose logits are per pixel: (N, C, H, W) for an (N, 3, H, W) input."""
