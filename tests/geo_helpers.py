"""Small georeferenced rasters made in code, for the tests of the GIS path (needs rasterio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .helpers import make_scene

UTM = "EPSG:32640"  # UTM zone 40N: Dubai
GEOGRAPHIC = "EPSG:4326"


def utm_transform(gsd: float = 0.5):
    from affine import Affine

    return Affine(gsd, 0.0, 500_000.0, 0.0, -gsd, 2_790_000.0)


def geographic_transform(step: float = 5e-6):
    from affine import Affine

    return Affine(step, 0.0, 55.27, 0.0, -step, 25.20)


def write_raster(
    path: Path,
    data: np.ndarray,
    crs=UTM,
    transform=None,
    nodata=None,
    colorinterp=None,
    mask: np.ndarray | None = None,
    overviews: bool = False,
    **profile,
) -> Path:
    """``data`` (bands, H, W) as a tiled GeoTIFF; ``mask`` (H, W) bool as an internal mask."""
    import rasterio

    count, h, w = data.shape
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=w,
            height=h,
            count=count,
            dtype=data.dtype,
            crs=crs,
            transform=transform if transform is not None else utm_transform(),
            nodata=nodata,
            tiled=True,
            blockxsize=64,
            blockysize=64,
            **profile,
        ) as dst:
            dst.write(data)
            if colorinterp:
                dst.colorinterp = colorinterp
            if mask is not None:
                dst.write_mask(mask.astype(np.uint8) * 255)
    if overviews:
        from rasterio.enums import Resampling

        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4], Resampling.average)
    return path


def scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(photo (3, H, W) uint8, labels (H, W)): the synthetic scene as raster bands."""
    photo, labels = make_scene(h, w, seed)
    return photo.transpose(2, 0, 1).copy(), labels
