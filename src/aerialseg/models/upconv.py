"""A decoder step's first conv, ``conv3x3(cat(upsample2x(low), skip))``, without the upsampling.

Why: a U-Net decoder step doubles its input's side by nearest-neighbour upsampling, joins the
skip, then runs a 3x3 conv over the result, so three of every four pixels the conv reads from
the upsampled part are copies. Each output pixel of one parity (row, column) sees the low-res
input through a 2x2 window whose taps are sums of the 3x3 kernel's: for even output rows the
taps are (w0) on row i-1 and (w1 + w2) on row i; for odd rows (w0 + w1) on row i and (w2) on
row i+1 (likewise for columns). So the upsampled part is one 2x2 conv at the low resolution
with the four parities' kernels as four groups of output channels, its outputs interleaved into
the full-size map (the sub-pixel trick of super-resolution networks, read backwards), and the
skip part a 3x3 conv over the skip alone, added. Same function, 4/9 of the upsampled part's
multiply-adds, and no upsampled or concatenated map in memory, forward or backward: an idle
``unet-effl0`` training step on one CPU thread does 1.08x the patches per second
(docs/experiments.md, *Decoder convs without the upsampled map*). Used by
:class:`~aerialseg.models.efficientnet.EfficientUNet` while it trains; inference and the
exported graphs keep the plain form (worth ~4 % of a 1024² pass there), so no label moves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# which of the 3x3 kernel's taps (last axis) go to each of the 2x2 kernel's taps (middle
# axis), for even and odd output rows (first axis); the same for columns
_TAPS = ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """The four parities' 2x2 kernels of a 3x3 ``weight`` (out, in, 3, 3), as one conv's
    (4 * out, in, 2, 2) weight, parities in the order (even, even), (even, odd), (odd, even),
    (odd, odd)."""
    taps = torch.tensor(_TAPS, dtype=weight.dtype, device=weight.device)
    k = torch.einsum("pak,qbl,oikl->pqoiab", taps, taps, weight)
    return k.reshape(4 * weight.shape[0], weight.shape[1], 2, 2)


_PARITIES = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) parity of an output pixel


def _windows(z: torch.Tensor, h: int, w: int) -> list[torch.Tensor]:
    """Each parity's (n, c, h, w) window of the 2x2 conv's (n, 4c, h+1, w+1) output: parity
    (p, q) of output pixel (2i+p, 2j+q) is its group's pixel (i+p, j+q), since the conv,
    padded by one, saw low-res rows i-1 and i at its row i."""
    c = z.shape[1] // 4
    return [z[:, g * c : (g + 1) * c, p : p + h, q : q + w] for g, (p, q) in enumerate(_PARITIES)]


def _pixels(y: torch.Tensor) -> list[torch.Tensor]:
    """The full-size map's pixels of each parity, as (n, c, h, w) views."""
    return [y[:, :, p::2, q::2] for p, q in _PARITIES]


class _Interleave(torch.autograd.Function):
    """The four parities' windows into one channels-last (n, c, 2h, 2w) map (as the convs
    around it want it); the backward is the same copy the other way."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        n, c, h, w = z.shape[0], z.shape[1] // 4, z.shape[2] - 1, z.shape[3] - 1
        out = z.new_empty(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
        for dst, src in zip(_pixels(out), _windows(z, h, w)):
            dst.copy_(src)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, c, h, w = grad.shape[0], grad.shape[1], grad.shape[2] // 2, grad.shape[3] // 2
        gz = grad.new_zeros(n, h + 1, w + 1, 4 * c).permute(0, 3, 1, 2)
        for dst, src in zip(_windows(gz, h, w), _pixels(grad)):
            dst.copy_(src)
        return gz


def upsampled_conv(low: torch.Tensor, skip: torch.Tensor | None, weight: torch.Tensor):
    """``F.conv2d(cat([interpolate(low, 2x, nearest), skip]), weight, padding=1)`` for a
    bias-free 3x3 ``weight`` whose first ``low.shape[1]`` input channels read ``low``;
    ``skip`` (twice ``low``'s side) may be None."""
    cl = low.shape[1]
    y = _Interleave.apply(F.conv2d(low, phase_kernels(weight[:, :cl]), None, 1, 1))
    if skip is not None:
        y = y + F.conv2d(skip, weight[:, cl:], None, 1, 1)
    return y
