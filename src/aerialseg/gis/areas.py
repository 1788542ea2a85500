"""Ground areas of a georeferenced raster's pixels, and the per-pixel encodings of a
streamed map: class counts per row, labels, confidence and probabilities as bytes."""

from __future__ import annotations

import numpy as np

from ..classes import IGNORE_INDEX, ClassTable, display_hex
from ..errors import AerialSegError


class ClassCounter:
    """A sink counting, per image row, the pixels of each class (and of no data)."""

    def __init__(self, height: int, n_classes: int):
        self.n = n_classes
        self.counts = np.zeros((height, n_classes + 1), np.int64)  # last column: no data

    def add(self, row: int, labels: np.ndarray) -> None:
        lab = np.where(labels == IGNORE_INDEX, self.n, labels).astype(np.int64)
        k = self.n + 1
        code = (np.arange(len(lab))[:, None] * k + lab).ravel()
        self.counts[row : row + len(lab)] += np.bincount(code, minlength=len(lab) * k).reshape(
            len(lab), k
        )


def labels_of(probs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Class index per pixel; IGNORE_INDEX (255) where the input has no data."""
    labels = probs.argmax(-1).astype(np.uint8)
    labels[~valid] = IGNORE_INDEX
    return labels


def confidence_of(top: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The highest class probability ``top`` (``probs.max(-1)``) x 255 (never 0: it is at
    least 1 / classes); 0 where the input has no data."""
    conf = np.rint(np.nan_to_num(top) * 255).astype(np.uint8)
    conf[~valid] = 0
    return conf


def probabilities_of(probs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-class probability x 255 as uint8 (0 where the input has no data)."""
    out = np.rint(np.nan_to_num(probs) * 255).astype(np.uint8)
    out[~valid] = 0
    return out


def pixel_areas(src, gsd: float | None = None) -> tuple[np.ndarray | None, str]:
    """Ground area of one pixel of each row in m^2, and how it was found: planar from the
    transform for a projected CRS (in its linear unit), geodesic on the CRS's ellipsoid
    (pyproj) for a geographic one, row by row since it shrinks towards the poles. Without a
    CRS: --gsd, or no areas."""
    h, t = src.height, src.transform
    if src.crs is None:
        if gsd:
            return np.full(h, gsd * gsd), "--gsd"
        return None, "none (the raster has no CRS; --gsd gives metres per pixel)"
    import pyproj

    try:
        crs = pyproj.CRS.from_user_input(src.crs.to_wkt())
    except (pyproj.exceptions.CRSError, Exception) as e:  # noqa: BLE001 - rasterio's too
        raise AerialSegError(f"{src.path}: unknown CRS ({str(e).splitlines()[0]})") from None
    if crs.is_geographic:
        geod = crs.get_geod()
        if geod is None:
            raise AerialSegError(f"{src.path}: geographic CRS without an ellipsoid")
        x = src.width // 2
        cx, cy = np.array([x, x + 1, x + 1, x]), np.array([0, 0, 1, 1])
        areas = np.empty(h)
        for r in range(h):  # the pixel in the middle of the row, its corners in degrees
            lon = t.a * cx + t.b * (cy + r) + t.c
            lat = t.d * cx + t.e * (cy + r) + t.f
            areas[r] = abs(geod.polygon_area_perimeter(lon, lat)[0])
        return areas, f"geodesic on the {crs.ellipsoid.name} ellipsoid (pyproj)"
    units = [a.unit_conversion_factor for a in crs.axis_info if a.unit_conversion_factor]
    if not units:
        raise AerialSegError(f"{src.path}: unknown CRS (no unit of length: {crs.name})")
    return np.full(h, abs(t.determinant) * units[0] * units[-1]), f"planar ({crs.name})"


def class_areas(counter: ClassCounter, classes: ClassTable, row_area: np.ndarray | None):
    """Statistics rows: pixels, share of the pixels with data, m^2 and ha per class."""
    totals = counter.counts.sum(0)
    data = int(totals[: counter.n].sum())
    area = counter.counts[:, : counter.n].T @ row_area if row_area is not None else None
    rows = []
    for i, (name, shown) in enumerate(zip(classes.names, classes.display)):
        row = {
            "class": name,
            "color": display_hex(shown),
            "pixels": int(totals[i]),
            "percent": round(100 * totals[i] / data, 4) if data else 0.0,
        }
        if area is not None:
            row["area_m2"] = round(float(area[i]), 2)
            row["area_ha"] = round(float(area[i]) / 10_000, 4)
        rows.append(row)
    return rows, int(totals[counter.n])
