"""GIS rasters read as 8-bit RGB in windows: any format GDAL opens, through rasterio.

A raster is never read whole. :class:`RasterSource` picks three bands (``--bands``, or the
ones whose colour interpretation says red/green/blue, or the first three), finds how to bring
16-bit or float values to 0-255 (per-band percentiles from an overview, or from a sample of
windows spread over the raster: ``--stretch p2,p98``; ``--stretch none`` takes the values as they
are) and which pixels hold data (nodata value, alpha band or internal mask: GDAL's mask of each
band, a pixel is data where any chosen band is). ``read`` then gives any window as
(RGB uint8, valid bool). rasterio is imported only here, when a raster is opened, so plain
JPEG/PNG work without the ``geo`` extra.

``resample`` (``segment --input-gsd``) shows the raster on a grid of ``resample`` times as
many pixels per side, through GDAL's warped VRT: everything downstream - windows, outputs,
their transform - then lives on that grid, and no resampled copy is ever written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import AerialSegError
from .stretch import Scale

GEO_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".jpg", ".jpeg", ".png")
WORLD_FILES = (".wld", ".tfw", ".jgw", ".pgw", ".jpgw", ".pngw", ".tifw")
SAMPLE_WINDOW = 256  # side of the windows sampled for percentiles when there is no overview
SAMPLE_WINDOWS = 64  # at most this many, on a regular grid over the raster
OVERVIEW_SIDE = 1024  # percentiles from an overview read at most this big
DECIMATE_TILE = 2048  # raster pixels per side of each tile of a decimated read


def rasterio_or_none():
    # GDAL's block cache defaults to 5 % of RAM, and fills up reading a big raster: keep it
    # small (read when the cache is first used; a user's own setting wins). 32 MB holds the
    # blocks of one strip of windows of a column chunk; more only added to the peak memory.
    os.environ.setdefault("GDAL_CACHEMAX", "32")
    try:
        import rasterio
    except ImportError:
        return None
    return rasterio


def need_rasterio():
    rio = rasterio_or_none()
    if rio is None:
        raise AerialSegError(
            "reading GIS rasters needs the geo extra: pip install 'aerialseg[geo]'"
        )
    return rio


def is_georeferenced(path: str | Path) -> bool:
    """Whether ``path`` is a raster with a coordinate system or a geotransform (a GeoTIFF, a
    VRT, a JPEG/PNG with a world file...). False without rasterio, or for a plain picture:
    those go the in-memory way."""
    try:
        dataset = open_raster(path)
    except AerialSegError:
        return True  # unreadable, and only GDAL reads it: the raster reader says why
    if dataset is None:
        return False
    dataset.close()
    return True


def open_dataset(path: Path):
    """``path`` opened by rasterio, or one line saying why it cannot be."""
    rio = need_rasterio()
    try:
        return rio.open(path)
    except Exception as e:  # noqa: BLE001 - GDAL's reasons come as several types
        raise AerialSegError(f"{path}: cannot read raster ({gdal_reason(e)})") from None


def open_raster(path: str | Path, asked: bool = False):
    """``path`` opened by rasterio when it goes the GIS way, else None (the in-memory way):
    a raster with a CRS or geotransform, or any raster format when ``asked`` (--bands,
    --stretch or --nodata given). Opened once: the caller hands it to :class:`RasterSource`
    (``dataset=``) and closes it. The same choice as :func:`is_georeferenced`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in GEO_SUFFIXES or rasterio_or_none() is None:
        return None
    if suffix in (".jpg", ".jpeg", ".png") and not asked and not _has_sidecar(path):
        return None  # a plain photo: never worth opening with GDAL
    try:
        dataset = open_dataset(path)
    except AerialSegError:
        if asked or suffix in (".vrt", ".jp2", ".img"):
            raise  # only GDAL reads these: its reason is the one to give
        return None  # the in-memory reader says why
    if asked or dataset.crs is not None or not dataset.transform.is_identity or suffix == ".vrt":
        return dataset
    dataset.close()
    return None


def _has_sidecar(path: Path) -> bool:
    names = [path.with_suffix(s) for s in WORLD_FILES] + [Path(str(path) + ".aux.xml")]
    return any(p.exists() for p in names)


class RasterSource:
    """A raster opened for windowed reading as RGB uint8 (use as a context manager)."""

    def __init__(
        self,
        path: str | Path,
        bands: tuple[int, ...] | None = None,
        scale: Scale | None = None,
        resample: float | Callable[[RasterSource], float] = 1.0,
        nodata: float | None = None,
        dataset=None,
    ):
        """``resample``: a factor, or a function of this source as opened (its CRS and
        grid) giving one, so a raster whose resolution decides it is opened once.
        ``dataset``: the file already opened by rasterio (see :func:`open_raster`)."""
        self.path = Path(path)
        self.nodata = nodata  # --nodata: a value marking no data where the file flags none
        self.src = dataset if dataset is not None else open_dataset(self.path)
        try:
            if callable(resample):
                resample = resample(self)
            self.resample = resample
            if resample != 1.0:
                self.src = self._resampled(resample)
            self.bands = self._choose_bands(bands)
            self.dtype = np.dtype(self.src.dtypes[self.bands[0] - 1])
            self.ranges = self._ranges(scale)
        except BaseException:
            self.close()
            raise

    # -- what the raster is -------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.src.height

    @property
    def width(self) -> int:
        return self.src.width

    @property
    def crs(self):
        return self.src.crs

    @property
    def transform(self):
        return self.src.transform

    def _choose_bands(self, bands: tuple[int, ...] | None) -> tuple[int, ...]:
        from rasterio.enums import ColorInterp

        n = self.src.count
        if bands is not None:
            bad = [b for b in bands if b > n]
            if bad:
                raise AerialSegError(
                    f"{self.path}: --bands {','.join(map(str, bands))}: band {bad[0]} is out of "
                    f"range (the raster has {n} band{'s' * (n != 1)})"
                )
            return bands
        interp = list(self.src.colorinterp)
        rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if all(c in interp for c in rgb):
            return tuple(interp.index(c) + 1 for c in rgb)
        if n < 3:
            raise AerialSegError(
                f"{self.path}: has {n} band{'s' * (n != 1)}, not 3; pick them with --bands "
                "(e.g. --bands 1,1,1 for one grey band)"
            )
        return (1, 2, 3)

    def _resampled(self, f: float):
        """The raster on a grid of ``f`` times as many pixels per side, same extent: bilinear
        when enlarging, the mean of the covered pixels when shrinking (no aliasing)."""
        from affine import Affine
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        if self.src.crs is None:
            raise AerialSegError(
                f"{self.path}: --input-gsd resamples georeferenced rasters with a CRS only; "
                "this one has none"
            )
        h, w = max(1, round(self.src.height * f)), max(1, round(self.src.width * f))
        t = self.src.transform @ Affine.scale(self.src.width / w, self.src.height / h)
        how = Resampling.bilinear if f > 1 else Resampling.average
        raw = self.src
        try:
            return WarpedVRT(raw, transform=t, width=w, height=h, resampling=how)
        except Exception as e:  # noqa: BLE001
            raw.close()
            raise AerialSegError(f"{self.path}: cannot resample ({gdal_reason(e)})") from None

    # -- scaling to 8 bits -------------------------------------------------------------
    def _ranges(self, scale: Scale | None) -> list[tuple[float, float]] | None:
        """Per chosen band (low, high) mapped to (0, 255); None: values as they are."""
        if scale is None:
            scale = Scale() if self.dtype == np.uint8 else Scale(percentiles=(2.0, 98.0))
        if scale.values is not None:
            return [scale.values] * 3
        if scale.percentiles is None:
            return None
        samples = self._samples
        ranges = []
        for b, values in zip(self.bands, samples):
            if values.size == 0:
                raise AerialSegError(f"{self.path}: band {b} holds no data (all nodata)")
            lo, hi = np.percentile(values, scale.percentiles)
            ranges.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
        return ranges

    @cached_property
    def _samples(self) -> list[np.ndarray]:
        """Valid values of each chosen band, from an overview when the raster has one, else
        from up to SAMPLE_WINDOWS windows on a grid: never the whole raster. Read once: the
        8-bit scaling and the blank-picture check both use it."""
        from rasterio.windows import Window

        h, w = self.height, self.width
        if self.src.overviews(self.bands[0]):
            f = max(1, math.ceil(max(h, w) / OVERVIEW_SIDE))
            shape = (max(1, h // f), max(1, w // f))
            windows, out_shape = [Window(0, 0, w, h)], shape
        else:
            side = SAMPLE_WINDOW
            n = max(1, int(math.sqrt(SAMPLE_WINDOWS)))
            ys = np.unique(np.linspace(0, max(0, h - side), n).astype(int))
            xs = np.unique(np.linspace(0, max(0, w - side), n).astype(int))
            windows = [Window(x, y, min(side, w), min(side, h)) for y in ys for x in xs]
            out_shape = None
        values: list[list[np.ndarray]] = [[], [], []]
        for win in windows:
            kw = {"out_shape": (3, *out_shape)} if out_shape else {}
            data = self._read_raw(win, **kw)
            valid = self._valid(win, out_shape)
            for i in range(3):
                v = data[i][valid]
                values[i].append(v[np.isfinite(v)] if v.dtype.kind == "f" else v)
        return [np.concatenate(v) for v in values]

    def sample_rgb(self) -> np.ndarray:
        """The sampled pixels of ``_samples`` as RGB uint8 (1, n, 3), scaled as ``read`` scales
        them: enough to tell a blank raster from a picture without reading it all."""
        values = self._samples
        n = min(len(v) for v in values)  # float bands may hold NaN in one band only
        return self.to_uint8(np.stack([v[:n] for v in values])[:, None, :])

    def _read_raw(self, window, **kw) -> np.ndarray:
        try:
            return self.src.read(list(self.bands), window=window, **kw)
        except Exception as e:  # noqa: BLE001
            raise AerialSegError(f"{self.path}: cannot read raster ({gdal_reason(e)})") from None

    def _valid(self, window, out_shape=None) -> np.ndarray:
        """(rows, cols) bool: where any chosen band holds data (GDAL's band masks: nodata
        value, alpha band or internal mask), and, with ``nodata`` (``--nodata``, like GDAL's
        ``-srcnodata``), not all of them equal that value: the black or white borders
        orthophotos often carry without a nodata flag."""
        kw = {"out_shape": (3, *out_shape)} if out_shape else {}
        try:
            masks = self.src.read_masks(list(self.bands), window=window, **kw)
        except Exception as e:  # noqa: BLE001
            raise AerialSegError(f"{self.path}: cannot read raster ({gdal_reason(e)})") from None
        valid = masks.any(axis=0)
        if self.nodata is not None:
            data = self._read_raw(window, **kw)
            same = np.isnan(data) if np.isnan(self.nodata) else data == self.nodata
            valid &= ~same.all(axis=0)
        return valid

    def to_uint8(self, data: np.ndarray) -> np.ndarray:
        """(3, rows, cols) raw values -> (rows, cols, 3) uint8."""
        if self.ranges is None:
            if data.dtype == np.uint8:
                return np.ascontiguousarray(data.transpose(1, 2, 0))
            out = np.clip(np.nan_to_num(data.astype(np.float32)), 0, 255)
            return np.rint(out).astype(np.uint8).transpose(1, 2, 0).copy()
        out = np.empty((*data.shape[1:], 3), dtype=np.uint8)
        for i, (lo, hi) in enumerate(self.ranges):
            band = (data[i].astype(np.float32) - lo) * (255.0 / (hi - lo))
            out[..., i] = np.rint(np.clip(np.nan_to_num(band), 0, 255))
        return out

    # -- windows -----------------------------------------------------------------------
    def read(self, row0: int, col0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """The window [row0, row0 + rows) x [col0, col0 + cols): (RGB (rows, cols, 3) uint8,
        valid (rows, cols) bool). Pixels without data are black."""
        from rasterio.windows import Window

        win = Window(col0, row0, cols, rows)
        rgb = self.to_uint8(self._read_raw(win))
        valid = self._valid(win)
        rgb[~valid] = 0
        return rgb, valid

    def valid(self, row0: int, col0: int, rows: int, cols: int) -> np.ndarray:
        """Where the window holds data: (rows, cols) bool."""
        from rasterio.windows import Window

        return self._valid(Window(col0, row0, cols, rows))

    def read_decimated(self, max_pixels: int) -> tuple[np.ndarray, np.ndarray, object]:
        """The whole raster as one picture of at most ``max_pixels`` pixels: (RGB uint8,
        valid, its transform). Read in tiles of about DECIMATE_TILE² raster pixels, each
        averaged down by GDAL (from the best overview where the file has them), so a huge
        raster is never in memory at full size, and each of its blocks is decoded once (a
        whole row of blocks of a wide raster does not fit GDAL's small block cache). The
        transform is the raster's, scaled by the decimation: the picture lands where the
        raster does."""
        from affine import Affine
        from rasterio.enums import Resampling
        from rasterio.windows import Window

        h, w = self.height, self.width
        f = max(1.0, math.sqrt(h * w / max_pixels))
        oh, ow = max(1, int(h / f)), max(1, int(w / f))
        if (oh, ow) == (h, w):
            rgb, valid = self.read_all()
            return rgb, valid, self.transform
        fy, fx = h / oh, w / ow
        rgb, valid = np.empty((oh, ow, 3), np.uint8), np.empty((oh, ow), bool)
        ty, tx = max(1, int(DECIMATE_TILE / fy)), max(1, int(DECIMATE_TILE / fx))
        for r0 in range(0, oh, ty):
            r1 = min(oh, r0 + ty)
            for c0 in range(0, ow, tx):
                c1 = min(ow, c0 + tx)
                # fractional source windows: each output pixel averages exactly its own area
                win = Window(c0 * fx, r0 * fy, (c1 - c0) * fx, (r1 - r0) * fy)
                shape = (r1 - r0, c1 - c0)
                raw = self._read_raw(win, out_shape=(3, *shape), resampling=Resampling.average)
                rgb[r0:r1, c0:c1] = self.to_uint8(raw)
                valid[r0:r1, c0:c1] = self._valid(win, shape)
        rgb[~valid] = 0
        return rgb, valid, self.transform @ Affine.scale(fx, fy)

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole raster (for small ones and for tests)."""
        return self.read(0, 0, self.height, self.width)

    def close(self) -> None:
        self.src.close()
        if hasattr(self.src, "src_dataset"):  # a warped VRT: the file under it too
            self.src.src_dataset.close()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gdal_reason(e: Exception) -> str:
    """GDAL's message, its first line only (or the error's type when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
