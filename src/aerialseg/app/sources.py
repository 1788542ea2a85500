"""What *Open image…* (or a file dropped on the window) reads, and where it lies on the ground.

Plain pictures (JPEG, PNG, BMP, WebP) are read by io.images, as ``segment`` reads them. Rasters
that GDAL reads (GeoTIFF, COG, VRT, 16-bit or multi-band TIFF, JPEG/PNG with a world file) go
through gis.rasters with ``segment``'s band choice (colour interpretation, else the first three)
and percentile scaling, and are read decimated to at most ``PREVIEW_PIXELS``: the app segments
what it shows in memory, and a huge raster must never be read whole. When the raster has a
georeference, the picture keeps it (the transform scaled by the decimation), so *Save…* can
write a labels GeoTIFF that lands where the raster does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..gis.rasters import is_georeferenced, rasterio_or_none
from ..io.images import read_image

# 16 megapixels: seconds to segment on a laptop CPU, and more than a screen shows
PREVIEW_PIXELS = 4096 * 4096
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


@dataclass(frozen=True, eq=False)
class GeoRef:
    """Where a picture lies: the raster's CRS and the picture's own transform. ``width`` and
    ``height`` are the picture's, so this is what GeoTiffWriter takes as ``like``."""

    crs: object
    transform: object
    width: int
    height: int
    source_size: tuple[int, int]  # the raster's (width, height)

    @property
    def factor(self) -> float:
        """How many raster pixels one picture pixel spans, per side (1: full resolution)."""
        return self.source_size[0] / self.width

    def describe(self) -> dict:
        """For the saved statistics."""
        return {
            "crs": self.crs.to_string() if self.crs else None,
            "transform": list(self.transform)[:6],
            "source_size": list(self.source_size),
            "downsampled_by": round(self.factor, 4),
        }


def is_raster(path: str | Path) -> bool:
    """Whether ``path`` goes through GDAL: a raster format, or a georeferenced picture.
    False without rasterio (the geo extra): then everything is read as a picture."""
    if Path(path).suffix.lower() in RASTER_SUFFIXES:
        return rasterio_or_none() is not None
    return is_georeferenced(path)


def read_picture(
    path: str | Path, max_pixels: int = PREVIEW_PIXELS
) -> tuple[np.ndarray, np.ndarray | None, GeoRef | None]:
    """(RGB uint8, where it holds data or None, its georeference or None)."""
    if not is_raster(path):
        return read_image(path), None, None
    from rasterio.errors import NotGeoreferencedWarning

    from ..gis.rasters import RasterSource

    with warnings.catch_warnings():  # a TIFF without georeference is fine here: a picture
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with RasterSource(path, _grey_bands(path)) as src:
            rgb, valid, transform = src.read_decimated(max_pixels)
            georef = src.crs is not None or not src.transform.is_identity
            size = (src.width, src.height)
            crs = src.crs
    h, w = valid.shape
    geo = GeoRef(crs, transform, w, h, size) if georef else None
    return rgb, (None if valid.all() else valid), geo


def _grey_bands(path: str | Path) -> tuple[int, ...] | None:
    """(1, 1, 1) for a raster of one or two bands (grey, grey + alpha), shown as grey: the
    app has no --bands to ask for them. None otherwise (and for a file GDAL cannot open:
    RasterSource then says why)."""
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return (1, 1, 1) if ds.count < 3 else None
    except Exception:  # noqa: BLE001 - reported by RasterSource, in one line
        return None
