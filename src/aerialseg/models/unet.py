"""U-Net (Ronneberger et al. 2015) in the shape the seed paper used, with a few options."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SegmentationModel


class Dropout(nn.Module):
    """Element-wise dropout, statistically the same as ``nn.Dropout`` (keep probability 1 - p
    to 1/65536; kept values scaled by 1 / (1 - p)), but cheaper on a CPU: the mask comes from
    16-bit random numbers drawn two per 32-bit draw, where torch's ``bernoulli_`` draws one
    per element and took ~18 % of a seed U-Net training step."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.p:
            return x
        n = x.numel()
        bits = torch.empty((n + 1) // 2, dtype=torch.int32).random_(-(2**31), 2**31)
        bits = bits.view(torch.int16)[:n].as_strided(x.shape, x.stride())  # x's own layout
        keep = bits >= round(self.p * 65536) - 32768
        return x * keep.to(x.dtype) * (1 / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _Block(nn.Sequential):
    """Two 3x3 convs with ReLU; dropout between them as in the seed, or batch norm after each."""

    def __init__(self, cin: int, cout: int, dropout: float, batch_norm: bool):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
        if dropout:
            layers.append(Dropout(dropout))
        layers.append(nn.Conv2d(cout, cout, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(SegmentationModel):
    """Encoder of ``depth`` 2x2 max-pools (filters ``base``, 2*base, ...), a bottleneck, and a
    decoder of 2x2 transposed convs with skip connections; a 1x1 conv gives the class logits.

    Any input size works: the input is reflect-padded to a multiple of ``2**depth`` and the
    output cropped back, so predictions always match the input pixel for pixel.
    """

    name = "unet"

    def __init__(
        self,
        num_classes: int = 6,
        base_filters: int = 16,
        depth: int = 4,
        batch_norm: bool = False,
        dropout: float = 0.2,
        bottleneck_dropout: float = 0.3,
        normalization: dict | None = None,
    ):
        super().__init__(num_classes, normalization)
        self.kwargs = dict(
            base_filters=base_filters,
            depth=depth,
            batch_norm=batch_norm,
            dropout=dropout,
            bottleneck_dropout=bottleneck_dropout,
        )
        self.depth = depth
        widths = [base_filters * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = 3
        for w in widths[:-1]:
            self.down.append(_Block(cin, w, dropout, batch_norm))
            cin = w
        self.bottom = _Block(cin, widths[-1], bottleneck_dropout, batch_norm)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(w * 2, w, 2, stride=2))
            self.dec.append(_Block(w * 2, w, dropout, batch_norm))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        for m in self.modules():  # Keras he_normal with zero bias, as the seed had
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each encoder level's output, finest first, the bottleneck last (the decoder's
        skips, and what :mod:`aerialseg.inference.familiarity` pools)."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = -h % m, -w % m
        x = self.normalize(x)
        if ph or pw:
            # reflect needs the pad smaller than the side; tiny inputs fall back to replicate
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        feats = []
        for block in self.down:
            x = block(x)
            feats.append(x)
            x = F.max_pool2d(x, 2)
        return [*feats, self.bottom(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        skips = self.encode(x)
        x = skips.pop()
        for up, block in zip(self.up, self.dec):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[..., :h, :w]
