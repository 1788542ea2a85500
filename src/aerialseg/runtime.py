"""Where and how a model runs: numeric precision, autocast and memory format.

torch is imported inside the functions that use it, so :data:`PRECISIONS` and
:func:`resolve_precision` serve command-line help and checks without importing torch.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AerialSegError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .models import SegmentationModel

PRECISIONS = ("auto", "bf16", "fp32")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU does bf16 math natively (AVX512-BF16 or AMX); elsewhere bf16 autocast
    is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise AerialSegError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return precision


def autocast(precision: str):
    """bf16 autocast on the CPU, or nothing for fp32."""
    import torch

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare(model: SegmentationModel, precision: str) -> SegmentationModel:
    """channels_last is what oneDNN's bf16 convolutions want; fp32 gains nothing from it."""
    import torch

    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def to_tensor(rgb: np.ndarray, precision: str = "fp32") -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float on the 0-255 scale: what the model is fed."""
    import torch

    x = torch.tensor(rgb).permute(2, 0, 1).unsqueeze(0).float()  # copies: input may be read-only
    if precision == "bf16":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def predict_logits(model: SegmentationModel, rgb: np.ndarray, precision: str) -> torch.Tensor:
    """Logits (1, C, H, W) float32 for a whole image in one forward pass."""
    import torch

    model.eval()
    with torch.inference_mode(), autocast(precision):
        return model(to_tensor(rgb, precision)).float()
