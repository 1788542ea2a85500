"""Running a model on images of any size: blended sliding windows and TTA.

Large images are cut into overlapping windows. Each window's class probabilities are weighted
by a smooth spline window (full weight in the centre, falling to ~0 at the edges) and summed,
so window borders, where a U-Net sees the least context, leave no seams. Windows are taken
from a reflect-padded view of the image, so the image borders are predicted from window
centres too. Window rows are processed top to bottom and every finished band of rows is handed
out at once, so memory grows with the image *width*, never with its area."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AerialSegError
from ..models import SegmentationModel
from ..runtime import autocast


def spline_ramp(n: int) -> np.ndarray:
    """n weights rising from ~0 to ~1 along a quadratic spline (2u^2, then 1 - 2(1-u)^2).

    A rising ramp and the mirrored falling ramp of the neighbouring window sum to exactly 1,
    so overlapping windows hand over smoothly with no bump in total weight.
    """
    u = (np.arange(n) + 0.5) / n
    return np.where(u < 0.5, 2 * u**2, 1 - 2 * (1 - u) ** 2)


def spline_window(size: int, ramp: int) -> np.ndarray:
    """1-D weights: spline ramps of length ``ramp`` at both ends, flat 1 in between."""
    w = np.ones(size)
    if ramp:
        r = spline_ramp(ramp)
        w[:ramp], w[size - ramp :] = r, r[::-1]
    return w


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into [0, n) like numpy's 'reflect' padding, for any offset."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= n, period - idx, idx)


@dataclass
class Tiling:
    """How an image is cut into windows.

    ``window``: side of a window; ``overlap``: share of a window that neighbours overlap
    (blended with the spline ramps); ``border``: reflect-padded context around the image;
    ``batch_size``: windows per forward pass. An image whose padded area fits in one batch
    (batch_size * window^2 pixels) is done in a single pass, with no seams to blend at all.
    """

    window: int = 1024
    overlap: float = 0.125
    border: int = 32
    batch_size: int = 2

    def __post_init__(self):
        if self.window < 64 or self.window % 16:
            raise AerialSegError(f"window must be a multiple of 16 and >= 64, not {self.window}")
        if not 0 <= self.overlap <= 0.5:
            raise AerialSegError(f"overlap must be between 0 and 0.5, not {self.overlap}")
        if self.batch_size < 1 or self.border < 0:
            raise AerialSegError("batch size must be >= 1 and border >= 0")

    def plan(self, h: int, w: int) -> tuple[list[int], list[int], int, int, int]:
        """(row starts, column starts, window height, window width, ramp) in padded
        coordinates, where the image starts at (border, border)."""
        b = self.border
        ph, pw = h + 2 * b, w + 2 * b
        if ph * pw <= self.batch_size * self.window**2 and max(ph, pw) <= 4 * self.window:
            return [0], [0], ph, pw, 0
        win_h, win_w = min(self.window, ph), min(self.window, pw)
        ramp = int(self.window * self.overlap)  # neighbours overlap by exactly one ramp
        return (
            _starts(ph, win_h, win_h - ramp),
            _starts(pw, win_w, win_w - ramp),
            win_h,
            win_w,
            ramp,
        )


def _starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets covering [0, length): evenly strided, the last one flush with the end."""
    if length <= window:
        return [0]
    return list(range(0, length - window, stride)) + [length - window]


@torch.inference_mode()
def predict_bands(
    model: SegmentationModel,
    rgb: np.ndarray,
    precision: str,
    tiling: Tiling | None = None,
    tta: bool = False,
    on_window: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Blended class probabilities band by band: yields (first row, probs (rows, W, C) float32).

    Bands come in order and cover the image exactly once. ``on_window(n)`` is called after
    every n windows done (for progress bars).
    """
    model.eval()
    tiling = tiling or Tiling()
    h, w = rgb.shape[:2]
    b = tiling.border
    rows, cols, win_h, win_w, ramp = tiling.plan(h, w)
    pw = w + 2 * b
    weight = torch.from_numpy(
        np.outer(spline_window(win_h, ramp), spline_window(win_w, ramp)).astype(np.float32)
    ).clamp_min(1e-4)  # never 0: a pixel only one window edge covers still gets a value
    col_idx = _reflect(np.arange(-b, w + b), w)
    c = model.num_classes
    kinds = range(8) if tta else (0,)
    # running sums over padded rows [top, top + win_h): weighted probabilities and weights
    top, acc, wsum = 0, torch.zeros(c, win_h, pw), torch.zeros(win_h, pw)

    def emit(until: int):
        """Hand out the finished padded rows [top, until) that lie on the image."""
        nonlocal top, acc, wsum
        lo, hi = max(top, b), min(until, b + h)
        if hi > lo:
            band = acc[:, lo - top : hi - top, b : b + w] / wsum[lo - top : hi - top, b : b + w]
            yield lo - b, band.permute(1, 2, 0).numpy()
        n = until - top
        # shift the running sums up by n rows in place, n rows at a time so no copy overlaps
        # its source (a fresh buffer would double this, the largest allocation, for a moment)
        for i in range(0, win_h - n, n):
            k = min(n, win_h - n - i)
            acc[:, i : i + k] = acc[:, i + n : i + n + k]
            wsum[i : i + k] = wsum[i + n : i + n + k]
        acc[:, max(0, win_h - n) :] = 0
        wsum[max(0, win_h - n) :] = 0
        top = until

    for y0 in rows:
        if y0 > top:
            yield from emit(y0)
        strip = rgb[_reflect(np.arange(y0 - b, y0 - b + win_h), h)][:, col_idx]
        for i in range(0, len(cols), tiling.batch_size):
            xs = cols[i : i + tiling.batch_size]
            batch = np.stack([strip[:, x0 : x0 + win_w] for x0 in xs])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
            probs = torch.zeros(len(xs), c, win_h, win_w)
            for k in kinds:
                xk = _dihedral_t(x, k)
                if precision == "bf16":
                    xk = xk.contiguous(memory_format=torch.channels_last)
                with autocast(precision):
                    out = model(xk)
                probs += _dihedral_t(out.float().softmax(1), k, inverse=True)
            probs *= weight / len(kinds)
            for j, x0 in enumerate(xs):
                acc[:, y0 - top : y0 - top + win_h, x0 : x0 + win_w] += probs[j]
                wsum[y0 - top : y0 - top + win_h, x0 : x0 + win_w] += weight
            if on_window:
                on_window(len(xs))
    yield from emit(rows[-1] + win_h)


def count_windows(h: int, w: int, tiling: Tiling) -> int:
    rows, cols, *_ = tiling.plan(h, w)
    return len(rows) * len(cols)


def _dihedral_t(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """The k-th flip/rotation of the last two axes (as data.dihedral), or its inverse."""
    if not inverse:
        x = torch.rot90(x, k % 4, (-2, -1))
        return x.flip(-1) if k >= 4 else x
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, -(k % 4), (-2, -1))
