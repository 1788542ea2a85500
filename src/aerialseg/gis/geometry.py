"""The geometry under vector labels: CRS transformations of shapely arrays, metric buffers,
repairs, and images' pixel grids. GDAL (rasterio), shapely and pyproj are the optional
``geo`` extra: imported inside the functions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AerialSegError

LONLAT = "EPSG:4326"  # the CRS extents are reported in, one for all files


def need_geo():
    try:
        import pyogrio  # noqa: F401
        import pyproj  # noqa: F401
        import rasterio  # noqa: F401
        import shapely  # noqa: F401
    except ImportError as e:
        raise AerialSegError(
            f"vector labels need the geo extra ({e.name} is missing): pip install 'aerialseg[geo]'"
        ) from None


def repaired(geoms, labels, where: str, log) -> tuple[np.ndarray, np.ndarray]:
    """Invalid polygons made valid; only the polygonal parts of what that gives are kept."""
    import shapely

    bad = ~shapely.is_valid(geoms)
    if not bad.any():
        return geoms, labels
    fixed = [shapely.make_valid(g) for g in geoms[bad]]
    fixed = [_polygonal(g) for g in fixed]
    geoms = geoms.copy()
    geoms[bad] = fixed
    keep = ~shapely.is_empty(geoms)
    skipped = int((~keep).sum())
    log(
        f"{where}: {int(bad.sum())} invalid geometries: {int(bad.sum()) - skipped} repaired, "
        f"{skipped} skipped (nothing polygonal left)"
    )
    return geoms[keep], labels[keep]


def _polygonal(geom):
    import shapely

    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6)]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def buffer_metres(lines: np.ndarray, crs, half: float, where: str) -> np.ndarray:
    """Bands ``2 * half`` metres wide around ``lines`` (in ``crs``), back in ``crs``."""
    import shapely
    from pyproj import CRS

    lonlat = to_crs(lines, crs, CRS.from_user_input(LONLAT), where)
    lon, lat = shapely.centroid(shapely.union_all(lonlat)).coords[0]
    local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    bands = shapely.buffer(to_crs(lines, crs, local, where), half)
    return to_crs(bands, local, crs, where)


def to_crs(geoms: np.ndarray, src, dst, where: str) -> np.ndarray:
    """``geoms`` from CRS ``src`` to ``dst``; one line when that cannot be done."""
    import shapely
    from pyproj import Transformer

    def fail(reason: str):
        return AerialSegError(
            f"{where}: cannot transform from {crs_name(src)} to {crs_name(dst)} ({reason})"
        )

    try:
        t = Transformer.from_crs(src, dst, always_xy=True)
        out = shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    except Exception as e:  # noqa: BLE001 - pyproj raises several types
        raise fail(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    coords = shapely.get_coordinates(out)
    if not np.isfinite(coords).all():
        raise fail("coordinates outside the target CRS's area")
    return out


def crs_name(crs) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


@dataclass
class Grid:
    """An image's pixel grid: size, affine transform, CRS (pyproj), bounds."""

    path: Path
    height: int
    width: int
    transform: object
    crs: object
    bounds: tuple[float, float, float, float]


def image_grid(image_path: str | Path, required: bool = True) -> Grid | None:
    """The grid of a georeferenced image; without georeferencing: an error, or None when not
    ``required`` (a folder's other images)."""
    need_geo()
    import rasterio
    from pyproj import CRS

    path = Path(image_path)
    try:
        with warnings.catch_warnings():  # a plain picture: said below, in words
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                h, w, transform, crs = src.height, src.width, src.transform, src.crs
                bounds = tuple(src.bounds)
    except rasterio.errors.RasterioIOError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
        raise AerialSegError(f"{path}: cannot read the image ({reason})") from None
    if crs is None or transform.is_identity:
        if not required:
            return None
        raise AerialSegError(
            f"{path}: image has no georeferencing (CRS and geotransform): vector labels "
            "cannot be placed on it"
        )
    return Grid(path, h, w, transform, CRS.from_user_input(crs.to_wkt()), bounds)


def grid_box(grid: Grid):
    import shapely

    x0, y0, x1, y1 = grid.bounds
    return shapely.segmentize(shapely.box(x0, y0, x1, y1), max(x1 - x0, y1 - y0) / 8)


def extent(geoms: np.ndarray) -> str:
    import shapely

    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    return f"lon {x0:.6f}..{x1:.6f}, lat {y0:.6f}..{y1:.6f}"
