"""Segmenting a georeferenced raster of any size in bounded memory.

The raster is never read whole, and no full-size array is ever made. The windows are those
of the in-memory path (:class:`~.tiling.Tiling` plans them over the whole raster); they are
run in column chunks of a few window columns, each chunk streamed top to bottom through
:func:`~.segmenter.predict_bands`, which reads it band by band from the raster
(:class:`_ChunkView`) and skips windows without data. Where two chunks meet, the one window
column on each side overlaps by one blending ramp: the left chunk's last ramp columns are kept
(rows x ramp x classes) and blended with the right chunk's first ones by the same spline
weights the in-memory path uses, so the seam is the in-memory result (to float rounding).
Finished pieces go straight to the output writers. Memory grows with the chunk width, not
with the raster.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..errors import AerialSegError
from ..runtime import release_freed_memory
from .segmenter import predict_bands
from .tiling import Tiling, reflect_index, spline_ramp

# Aim for column chunks about this wide (pixels): with 1024 windows, two window columns. The
# running sums, the strip read and the bands handed out grow with it; the windows do not (the
# plan is global), and the extra reads where chunks meet (one ramp each) cost little.
CHUNK = 2048
# Rows handed to the sinks at a time: a window stride's band (1008 rows x 2096 columns x 6
# classes, float32: 50 MB) and the sinks' copies of it were a tenth of the peak memory.
BAND_ROWS = 128
# Resident bytes over which the heap's freed pages go back to the kernel after a window
# (runtime.release_freed_memory): under 1 GB (10^9 bytes) with one 1152² forward's growth on top.
TRIM_ABOVE = int(os.environ.get("AERIALSEG_TRIM_ABOVE", 850 * 2**20))

Sink = Callable[[int, int, np.ndarray, np.ndarray], None]


class _ChunkView:
    """Columns [p0, p1) of the raster's reflect-padded image, as ``predict_bands`` reads an
    array with border 0: ``view[rows]`` for padded row indices. The reads for a strip of
    rows are cached, so ``view.valid[rows]`` right after costs nothing."""

    def __init__(self, src, border: int, p0: int, p1: int):
        self.src, self.b = src, border
        self.cols = reflect_index(np.arange(p0 - border, p1 - border), src.width)
        self.c0 = int(self.cols.min())
        self.shape = (src.height + 2 * border, p1 - p0, 3)
        self._key, self._rgb, self._valid = None, None, None
        self.valid = _Valid(self)

    def _load(self, idx: np.ndarray) -> None:
        key = idx.tobytes()
        if key == self._key:
            return
        rows = reflect_index(np.asarray(idx) - self.b, self.src.height)
        r0, r1 = int(rows.min()), int(rows.max()) + 1
        rgb, valid = self.src.read(r0, self.c0, r1 - r0, int(self.cols.max()) + 1 - self.c0)
        self._rgb = rgb[rows - r0][:, self.cols - self.c0]
        self._valid = valid[rows - r0][:, self.cols - self.c0]
        self._key = key

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        self._load(idx)
        return self._rgb


class _Valid:
    def __init__(self, view: _ChunkView):
        self.view = view

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        self.view._load(idx)
        return self.view._valid


def column_chunks(tiling: Tiling, height: int, width: int, chunk: int = CHUNK):
    """The global window plan, cut into chunks of consecutive window columns: a list of
    (first, end) window-column indices, and the plan. Chunks meet only where neighbouring
    windows overlap by exactly one ramp (so the seam blends as the global plan does); each
    chunk runs its windows of the global plan as they are, never planned anew for its width."""
    rows, cols, win_h, win_w, ramp = plan = tiling.plan(height, width)
    stride = win_w - ramp
    per = max(2, round((chunk - ramp) / max(stride, 1)))
    return _cut(cols, per, stride, ramp), plan


def _cut(cols: list[int], per: int, stride: int, ramp: int) -> list[tuple[int, int]]:
    cuts = [0]
    while len(cols) - cuts[-1] > per:
        nxt = cuts[-1] + per
        if cols[nxt] - cols[nxt - 1] != stride or ramp == 0:
            break
        cuts.append(nxt)
    return list(zip(cuts, cuts[1:] + [len(cols)]))


def stream_raster(
    seg,
    src,
    sinks: list[Sink],
    tta: bool = False,
    on_window: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> None:
    """Run ``seg`` over the raster ``src`` (a :class:`~aerialseg.gis.rasters.RasterSource`)
    and hand every finished piece to each sink as ``sink(row, col, probs, valid)``: probs
    (rows, cols, C) float32 blended probabilities, valid (rows, cols) bool. Every pixel is
    handed out exactly once."""
    tiling = seg.tiling
    h, w, b = src.height, src.width, tiling.border
    groups, (rows, cols, win_h, win_w, ramp) = column_chunks(tiling, h, w, chunk)
    rise = spline_ramp(ramp).astype(np.float32)[None, :, None] if ramp else None
    inner = replace(tiling, border=0)  # a chunk's view is already padded
    seam = _Seam(ramp, seg.model.num_classes) if len(groups) > 1 else None

    def done(n: int) -> None:  # after every forward pass
        release_freed_memory(TRIM_ABOVE)
        if on_window:
            on_window(n)

    try:
        for n, (i0, i1) in enumerate(groups):
            p0, p1 = cols[i0], cols[i1 - 1] + win_w
            last = i1 == len(cols)
            blend = n > 0
            view = _ChunkView(src, b, p0, p1)
            share = (rows, [c - p0 for c in cols[i0:i1]], win_h, win_w, ramp)
            bands = predict_bands(seg.model, view, seg.precision, inner, tta, done,
                                  seg.device, valid=view.valid, plan=share,
                                  band_rows=BAND_ROWS)  # fmt: skip
            # padded columns this chunk finishes: up to where the next chunk's windows begin
            x_lo, x_hi = max(p0, b), min(p1 if last else p1 - ramp, b + w)
            for y, probs in bands:
                y0, y1 = max(y, b), min(y + len(probs), b + h)
                if y1 <= y0:
                    continue  # padding rows
                probs = probs[y0 - y : y1 - y]
                r0, r1 = y0 - b, y1 - b
                if blend:  # blend into the last chunk's ramp, as the global plan does
                    probs[:, :ramp] = probs[:, :ramp] * rise + seam.read(r0, r1) * (1 - rise)
                if not last:
                    seam.write(r0, probs[:, -ramp:])
                if x_hi > x_lo:
                    part = probs[:, x_lo - p0 : x_hi - p0]
                    valid = src.valid(r0, x_lo - b, r1 - r0, x_hi - x_lo)
                    for sink in sinks:
                        sink(r0, x_lo - b, part, valid)
                    del part, valid
                del probs  # not kept alive through the next row of windows' forward passes
    finally:
        if seam:
            seam.close()
    release_freed_memory(0)  # the passes' pages: of no use to the writing that follows


class _Seam:
    """The last chunk's last ``ramp`` columns (image rows x ramp x classes, float32), blended
    into the next chunk's first ones: kept in a scratch file, not in memory, as it grows with
    the raster's height (138 MB at 40 000 rows). One file: rows are handed out once each, in
    order, so a row's old values are read before the same row's new ones overwrite them. The
    page cache holds it; this process's resident memory does not."""

    def __init__(self, ramp: int, classes: int):
        self.row = ramp * classes * 4  # bytes
        self.shape = (ramp, classes)
        self.f = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()

    def write(self, r0: int, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, np.float32)
        try:
            os.pwrite(self.f.fileno(), data, r0 * self.row)
        except OSError as e:
            raise AerialSegError(f"cannot write a scratch file in {tempfile.gettempdir()} "
                                 f"({e.strerror or e})") from None  # fmt: skip

    def read(self, r0: int, r1: int) -> np.ndarray:
        data = os.pread(self.f.fileno(), (r1 - r0) * self.row, r0 * self.row)
        return np.frombuffer(data, np.float32).reshape(r1 - r0, *self.shape)

    def close(self) -> None:
        self.f.close()
