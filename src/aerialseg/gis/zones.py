"""Class areas per zone: ``--zones parcels.gpkg`` (any vector file OGR reads).

Zones are reprojected to the label raster's CRS; a pixel belongs to a zone when its centre
lies inside it (zones may overlap: each is counted by itself). Each zone is read from the
label raster through its own bounding window, in chunks of rows, so neither the raster nor a
zone raster is ever whole in memory. Areas use the same per-row pixel areas as the map's
statistics (planar or geodesic). Written as CSV and as a GeoPackage layer of the zones with
their class areas and shares.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..classes import IGNORE_INDEX, ClassTable
from ..errors import AerialSegError
from ..io.files import write_text

ROWS = 2048


def read_zones(path: Path, crs) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
    """(geometries in ``crs``, field names, field values) of a vector file."""
    import pyogrio.raw
    import shapely
    from pyproj import CRS, Transformer

    try:
        meta, _, wkb, fields = pyogrio.raw.read(path)
    except Exception as e:  # noqa: BLE001 - OGR's reasons come as several types
        raise AerialSegError(f"--zones {path}: cannot read ({str(e).splitlines()[0]})") from None
    geoms = shapely.from_wkb(wkb)
    if not len(geoms):
        raise AerialSegError(f"--zones {path}: holds no features")
    if meta.get("crs") and crs is not None:
        src = CRS.from_user_input(meta["crs"])
        dst = CRS.from_wkt(crs.to_wkt())
        if src != dst:
            tr = Transformer.from_crs(src, dst, always_xy=True)
            geoms = shapely.transform(
                geoms, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1]))
            )
    elif crs is not None:
        raise AerialSegError(f"--zones {path}: has no CRS, so it cannot be placed on the map")
    return geoms, list(meta["fields"]), list(fields)


def check_zones(path: Path, src) -> None:
    """Refuse, before any work, a zones file that cannot be read or lies off the raster."""
    import shapely

    geoms, _, _ = read_zones(path, src.crs)
    left, bottom, right, top = src.src.bounds
    if not shapely.intersects(geoms, shapely.box(left, bottom, right, top)).any():
        raise AerialSegError(f"--zones {path}: no zone overlaps the raster {src.path}")


def zone_statistics(
    labels_path: Path,
    zones_path: Path,
    classes: ClassTable,
    row_area: np.ndarray | None,
    csv_path: Path,
    gpkg_path: Path,
) -> dict:
    """Per-zone pixels and areas of each class, written to ``csv_path`` and ``gpkg_path``."""
    import rasterio
    import shapely
    from rasterio.features import rasterize
    from rasterio.windows import Window

    n = len(classes)
    with rasterio.open(labels_path) as src:
        geoms, names, values = read_zones(zones_path, src.crs)
        area = row_area if row_area is not None else np.ones(src.height)
        counts = np.zeros((len(geoms), n + 1), np.int64)  # last: pixels without data
        areas = np.zeros((len(geoms), n + 1))
        for z, g in enumerate(geoms):
            if g is None or g.is_empty:
                continue
            r0, c0, h, w = _pixel_window(shapely.bounds(g), src)
            if h <= 0 or w <= 0:
                continue  # off the raster
            for y in range(r0, r0 + h, ROWS):
                rows = min(ROWS, r0 + h - y)
                t = src.window_transform(Window(c0, y, w, rows))
                inside = rasterize([(g, 1)], (rows, w), transform=t, fill=0, dtype="uint8")
                if not inside.any():
                    continue
                labels = src.read(1, window=Window(c0, y, w, rows))
                lab = np.where(labels == IGNORE_INDEX, n, labels).astype(np.int64)
                ri, ci = np.nonzero(inside)
                code = ri * (n + 1) + lab[ri, ci]
                per_row = np.bincount(code, minlength=rows * (n + 1)).reshape(rows, n + 1)
                counts[z] += per_row.sum(0)
                areas[z] += per_row.T @ area[y : y + rows]
    if not counts.any():
        raise AerialSegError(f"--zones {zones_path}: no zone overlaps the raster")
    table = _rows(names, values, counts, areas, classes, row_area is not None)
    _write_csv(csv_path, table)
    _write_gpkg(gpkg_path, geoms, table, src.crs)
    return {"zones": len(geoms), "zones_on_map": int((counts.sum(1) > 0).sum())}


def _pixel_window(bounds, src) -> tuple[int, int, int, int]:
    """(first row, first column, rows, columns) of the raster that a bounding box covers."""
    x0, y0, x1, y1 = bounds
    i = ~src.transform
    corners = [(x, y) for x in (x0, x1) for y in (y0, y1)]
    cols = [i.a * x + i.b * y + i.c for x, y in corners]
    rows = [i.d * x + i.e * y + i.f for x, y in corners]
    r0, c0 = max(0, int(np.floor(min(rows)))), max(0, int(np.floor(min(cols))))
    r1 = min(src.height, int(np.ceil(max(rows))))
    c1 = min(src.width, int(np.ceil(max(cols))))
    return r0, c0, r1 - r0, c1 - c0


def _rows(names, values, counts, areas, classes, metres: bool) -> list[dict]:
    unit = "m2" if metres else "px"
    table = []
    for z in range(len(counts)):
        row = {"zone": z + 1}
        row.update({k: _plain(v[z]) for k, v in zip(names, values) if k not in ("zone",)})
        data = areas[z, : len(classes)].sum()
        for i, name in enumerate(classes.names):
            row[f"{name}_{unit}"] = round(float(areas[z, i]), 2)
            row[f"{name}_pct"] = round(100 * float(areas[z, i] / data), 3) if data else 0.0
        row[f"nodata_{unit}"] = round(float(areas[z, -1]), 2)
        table.append(row)
    return table


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _write_csv(path: Path, table: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    write_text(path, buf.getvalue())


def _write_gpkg(path: Path, geoms: np.ndarray, table: list[dict], crs) -> None:
    import os

    import shapely
    from pyogrio.raw import write

    if os.path.exists(path):
        os.unlink(path)  # the empty placeholder of the temporary name
    keys = list(table[0])
    data = [np.array([r[k] for r in table]) for k in keys]
    data = [d.astype(object) if d.dtype.kind in "UO" else d for d in data]
    write(
        path,
        shapely.to_wkb(geoms),
        field_data=data,
        fields=keys,
        layer="zones",
        driver="GPKG",
        crs=crs.to_wkt() if crs else None,
        geometry_type="Unknown",
    )
