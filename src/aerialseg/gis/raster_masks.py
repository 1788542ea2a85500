"""One-band GIS rasters read as masks: class indices, or colours of a colour table.

RGB masks and PNGs are pictures (:mod:`.images`); this is the GeoTIFF a GIS writes for a
classified map, read whole or in windows (``train --stream``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AerialSegError
from ..io.images import index_labels
from .rasters import gdal_reason, rasterio_or_none


def read_mask_raster(
    path: str | Path,
    classes,
    window: tuple[int, int, int, int] | None = None,
    strict: bool = False,
) -> tuple[np.ndarray, int] | None:
    """A one-band GIS raster mask as (labels (H, W) uint8, pixels of no class), or None for
    anything else (RGB masks and PNGs are read as pictures). Its values are class indices
    (255 = unlabelled), or, when it has a colour table, colours of the class table; values
    that are no class and nodata become 255 (ignored), and those that are not nodata are
    counted (``strict``: refused, see :func:`.images.index_labels`). ``window``: (row,
    column, rows, columns) only."""
    if Path(path).suffix.lower() not in (".tif", ".tiff") or rasterio_or_none() is None:
        return None
    import rasterio
    from rasterio.windows import Window

    win = None if window is None else Window(window[1], window[0], window[3], window[2])
    try:
        with rasterio.open(path) as src:
            if src.count != 1:
                return None
            values = src.read(1, window=win)
            valid = src.read_masks(1, window=win) > 0
            try:
                cmap = src.colormap(1)
            except ValueError:  # no colour table: the values are class indices
                cmap = None
    except Exception as e:  # noqa: BLE001
        raise AerialSegError(f"{path}: cannot read mask ({gdal_reason(e)})") from None
    if cmap is not None:
        lut = np.zeros((max(256, int(values.max()) + 1), 3), np.uint8)
        for k, rgba in cmap.items():
            lut[k] = rgba[:3]
        labels, unknown = classes.encode(lut[values])
        unknown -= int(np.count_nonzero(~valid & (labels == 255)))
    else:
        values = np.where(valid, values, 255)  # nodata: unlabelled, whatever its value
        if values.dtype != np.uint8:  # 16-bit or float indices: anything over 255 is no class
            values = np.where((values < 0) | (values > 255) | (values % 1 != 0), 254, values)
        labels, unknown = index_labels(values.astype(np.uint8), len(classes), path, strict)
    labels[~valid] = 255
    return labels, max(0, unknown)
