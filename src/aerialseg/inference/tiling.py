"""How an image of any size is cut into overlapping windows, and how they are blended.

Each window's class probabilities are weighted by a smooth spline window (full weight in the
centre, falling to ~0 at the edges) and summed, so window borders, where a U-Net sees the
least context, leave no seams. Windows are taken from a reflect-padded view of the image, so
the image borders are predicted from window centres too. Pure geometry: running the model over
the windows is :func:`aerialseg.inference.segmenter.predict_bands`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AerialSegError


def spline_ramp(n: int) -> np.ndarray:
    """n weights rising from ~0 to ~1 along a quadratic spline (2u^2, then 1 - 2(1-u)^2).

    A rising ramp and the mirrored falling ramp of the neighbouring window sum to exactly 1,
    so overlapping windows hand over smoothly with no bump in total weight.
    """
    u = (np.arange(n) + 0.5) / n
    return np.where(u < 0.5, 2 * u**2, 1 - 2 * (1 - u) ** 2)


def spline_window(size: int, ramp: int) -> np.ndarray:
    """1-D weights: spline ramps of length ``ramp`` at both ends, flat 1 in between.

    A window shorter than two ramps (the one window across a narrow image) gets ramps of
    half its size: it has no neighbour to hand over to along that axis anyway."""
    w = np.ones(size)
    ramp = min(ramp, size // 2)
    if ramp:
        r = spline_ramp(ramp)
        w[:ramp], w[size - ramp :] = r, r[::-1]
    return w


def reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into [0, n) like numpy's 'reflect' padding, for any offset."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= n, period - idx, idx)


# Window sides are rounded up to a multiple of this: the networks pad their input to a multiple
# of 32 (five stride-2 steps; 16 for the 4-level U-Net), and pixels of the image are better than
# padding the network computes on and throws away.
ALIGN = 32


@dataclass
class Tiling:
    """How an image is cut into windows.

    ``window``: the longest window side; ``overlap``: share of ``window`` that neighbours
    overlap at least (one spline ramp, where they blend); ``border``: reflect-padded context
    around the image; ``batch_size``: windows per forward pass. An image whose padded area
    fits in one batch (batch_size * window^2 pixels) is done in a single pass, with no seams
    to blend at all. Otherwise windows are sized to the image (:func:`fit_window`): along each
    axis the fewest windows of at most ``window`` that overlap by a ramp, made just large
    enough to cover it, so they overlap no more than the blending needs.

    One window per pass by default: on a CPU a forward pass costs more per pixel the more
    pixels it holds (its activations fall out of the caches; benchmarks/image_speed.py), so
    batching windows makes them slower, not faster.
    """

    # 1152: a 1024² image with its 32-px border (1088²) is one pass, not 2 x 2 windows of
    # 608² (1.41x its pixels): 0.29 -> 0.24 CPU-s, for +0.1 GiB peak on a 4000² GeoTIFF
    # (benchmarks/image_speed.py --windows 1152, benchmarks/georaster.py --windows 1024 1152)
    window: int = 1152
    overlap: float = 0.125
    border: int = 32
    batch_size: int = 1

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
        ramp = int(self.window * self.overlap)  # neighbours overlap by at least one ramp
        win_h, win_w = fit_window(ph, self.window, ramp), fit_window(pw, self.window, ramp)
        return (
            strided(ph, win_h, win_h - ramp),
            strided(pw, win_w, win_w - ramp),
            win_h,
            win_w,
            ramp,
        )


def fit_window(length: int, window: int, ramp: int) -> int:
    """The window side that covers ``length`` with the fewest windows of at most ``window``
    overlapping by ``ramp``, each as small as that count allows (rounded up to ALIGN).

    Why: windows of the full ``window`` strided across an image overlap wherever the last one
    must sit flush with the end; an 1881-px side took two 1024-px windows overlapping by 167
    px, and a 2125-px side three overlapping by 128 and 819. Sized to the image, n windows
    overlap by the ramp (plus the rounding) and cover little more than the image.
    """
    if length <= window:
        return length
    n = -(-(length - ramp) // (window - ramp))  # fewest windows of `window` that cover it
    side = -(-(length + (n - 1) * ramp) // n)  # n windows overlapping by exactly one ramp
    # at least two ramps: a window's rising and falling ramps must not overlap each other, or
    # neighbours' weights no longer sum to 1 (only with --overlap near 0.5)
    return min(window, length, max(2 * ramp, -(-side // ALIGN) * ALIGN))


def strided(length: int, window: int, stride: int) -> list[int]:
    """Window offsets covering [0, length): evenly strided, the last one flush with the end."""
    if length <= window:
        return [0]
    return list(range(0, length - window, stride)) + [length - window]


def count_windows(h: int, w: int, tiling: Tiling) -> int:
    rows, cols, *_ = tiling.plan(h, w)
    return len(rows) * len(cols)
