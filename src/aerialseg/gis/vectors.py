"""Label GeoTIFF -> polygons (GeoPackage in the raster's CRS, or GeoJSON in EPSG:4326).

The label raster is read in chunks of rows, never whole. Each chunk is sieved (the minimum
mapping unit; with a halo of rows around it, so a region is judged by its whole size),
polygonised by GDAL in pixel coordinates, and simplified as a coverage (shared edges between
neighbours stay shared: no gaps, no overlaps; the chunk's own cut lines are kept as they are).
Polygons cut by a chunk line are merged with their other part; a polygon is written as soon as
it cannot grow any more, so the open set stays small. Only then are the pixel coordinates
mapped to the raster's CRS, and areas computed: planar for a projected CRS, geodesic (pyproj)
for a geographic one. A GeoPackage also carries its style (``vector_style``): QGIS draws the
polygons by class in the display colours as soon as the file is opened.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..classes import IGNORE_INDEX, ClassTable
from ..errors import AerialSegError

CHUNK_PIXELS = 8_000_000  # a chunk of rows holds about this many pixels (memory ~ 60 B each)
ROWS = 2048  # at most this many rows per chunk
HALO_MAX = 1024  # rows of context around a chunk for the sieve
FLUSH = 20_000  # features written at a time
LAYER = "polygons"  # the GeoPackage layer's name


def polygonize_to_file(
    labels_path: Path,
    dest: Path,
    classes: ClassTable,
    fmt: str = "gpkg",
    mmu_px: float = 0.0,
    simplify_px: float = 1.0,
    rows: int | None = None,
) -> dict:
    """Write one polygon layer (class, class_index, area_m2, area_ha) for the label raster;
    returns what was written (count, seconds, bytes)."""
    import rasterio

    start = time.perf_counter()
    with rasterio.open(labels_path) as src:
        rows = rows or int(np.clip(CHUNK_PIXELS // src.width, 256, ROWS))
        out = _Output(dest, fmt, src.crs, src.transform, classes)
        try:
            for geoms, values in _pieces(src, mmu_px, simplify_px, rows):
                out.add(geoms, values)
            out.close()
        except BaseException:
            out.abort()
            raise
    return {
        "format": fmt,
        "polygons": out.count,
        "seconds": round(time.perf_counter() - start, 2),
        "bytes": os.path.getsize(dest),
        "mmu_pixels": mmu_px,
        "simplify_pixels": simplify_px,
    }


def _pieces(src, mmu_px: float, simplify_px: float, rows: int):
    """Finished polygons (pixel coordinates) and their labels, chunk by chunk."""
    import shapely
    from rasterio.features import shapes, sieve
    from rasterio.windows import Window

    h, w = src.height, src.width
    size = int(np.ceil(mmu_px))
    halo = min(size, HALO_MAX) if size > 1 else 0
    open_geoms, open_values = np.empty(0, object), np.empty(0, np.int64)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a0, a1 = max(0, r0 - halo), min(h, r1 + halo)
        labels = src.read(1, window=Window(0, a0, w, a1 - a0))
        if size > 1:
            labels = sieve(labels, size, connectivity=4, mask=labels != IGNORE_INDEX)
        core = np.ascontiguousarray(labels[r0 - a0 : r1 - a0])
        polys = [(shapely.geometry.shape(g), int(v)) for g, v in shapes(core, connectivity=4)]
        geoms = np.array([p for p, _ in polys], dtype=object)
        values = np.array([v for _, v in polys], dtype=np.int64)
        geoms = shapely.transform(geoms, lambda c, r0=r0: c + (0, r0))  # to raster rows
        if simplify_px > 0:
            # the chunk rectangle stays fixed, so parts cut by it still meet edge to edge
            geoms = shapely.coverage_simplify(geoms, simplify_px, simplify_boundary=False)
        keep = values != IGNORE_INDEX
        geoms, values = geoms[keep], values[keep]
        geoms, values = _merge(open_geoms, open_values, geoms, values, r0)
        ymax = shapely.bounds(geoms)[:, 3] if len(geoms) else np.empty(0)
        still_open = (ymax >= r1) & (r1 < h)  # touches the next chunk: may grow
        yield geoms[~still_open], values[~still_open]
        open_geoms, open_values = geoms[still_open], values[still_open]
    if len(open_geoms):
        yield open_geoms, open_values


def _merge(old_g, old_v, new_g, new_v, cut: int):
    """Merge polygons of the last chunk that touch line ``cut`` with the new chunk's pieces of
    the same class they share an edge with there (any number of pieces, transitively)."""
    import shapely

    if not len(old_g) or not len(new_g):
        return np.concatenate([old_g, new_g]), np.concatenate([old_v, new_v])
    geoms = np.concatenate([old_g, new_g])
    values = np.concatenate([old_v, new_v])
    tree = shapely.STRtree(new_g)
    i_old, i_new = tree.query(old_g, predicate="intersects")
    same = old_v[i_old] == new_v[i_new]
    i_old, i_new = i_old[same], i_new[same]
    shared = shapely.length(shapely.intersection(old_g[i_old], new_g[i_new])) > 0
    i_old, i_new = i_old[shared], i_new[shared] + len(old_g)
    parent = np.arange(len(geoms))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(i_old, i_new):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    roots = np.array([find(i) for i in range(len(geoms))])
    out_g, out_v = [], []
    for root in np.unique(roots):
        members = np.flatnonzero(roots == root)
        if len(members) == 1:
            g = geoms[members[0]]
        else:  # without the vertices left in a line where the pieces met
            g = shapely.simplify(shapely.union_all(geoms[members]), 0)
        for part in shapely.get_parts(g):  # a merged polygon is one piece; guard anyway
            out_g.append(part)
            out_v.append(values[root])
    return np.array(out_g, dtype=object), np.array(out_v, dtype=np.int64)


class _Output:
    """The polygon file, written in batches: a GeoPackage layer in the raster's CRS, or an
    RFC 7946 GeoJSON FeatureCollection in EPSG:4326 (counter-clockwise exteriors)."""

    def __init__(self, dest: Path, fmt: str, crs, transform, classes: ClassTable):
        import shapely

        self.dest, self.fmt, self.classes = Path(dest), fmt, classes
        self.count, self.crs = 0, crs
        t = transform
        self.affine = [t.a, t.b, t.d, t.e, t.c, t.f]
        self.area = area_function(crs, transform)
        self.to_wgs84 = None
        self._shapely = shapely
        if fmt == "geojson":
            if crs is None:
                raise AerialSegError("GeoJSON polygons need a raster with a CRS (use gpkg)")
            from pyproj import CRS, Transformer

            tr = Transformer.from_crs(CRS.from_wkt(crs.to_wkt()), "EPSG:4326", always_xy=True)
            self.to_wgs84 = lambda c: np.round(np.column_stack(tr.transform(c[:, 0], c[:, 1])), 8)
            self.f = open(self.dest, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self.f.write('{"type": "FeatureCollection", "features": [\n')
        elif os.path.exists(self.dest):
            os.unlink(self.dest)  # the empty placeholder of the temporary name

    def add(self, geoms: np.ndarray, values: np.ndarray) -> None:
        shapely = self._shapely
        for i in range(0, len(geoms), FLUSH):
            g = _affine(geoms[i : i + FLUSH], self.affine)
            v = values[i : i + FLUSH]
            area = self.area(g)
            names = np.array(self.classes.names, dtype=object)[v]
            if self.fmt == "geojson":
                g = shapely.orient_polygons(shapely.transform(g, self.to_wgs84))
                for geom, name, idx, a in zip(shapely.to_geojson(g), names, v, area):
                    props = json.dumps(
                        {
                            "class": name,
                            "class_index": int(idx),
                            "area_m2": round(a, 3),
                            "area_ha": round(a / 1e4, 6),
                        }
                    )
                    sep = ",\n" if self.count else ""
                    self.f.write(
                        f'{sep}{{"type": "Feature", "properties": {props}, "geometry": {geom}}}'
                    )
                    self.count += 1
                continue
            from pyogrio.raw import write

            write(
                self.dest,
                shapely.to_wkb(g),
                field_data=[names, v.astype(np.int32), np.round(area, 3), np.round(area / 1e4, 6)],
                fields=["class", "class_index", "area_m2", "area_ha"],
                layer=LAYER,
                driver="GPKG",
                geometry_type="Polygon",
                crs=self.crs.to_wkt() if self.crs else None,
                append=self.count > 0,
            )
            self.count += len(g)

    def close(self) -> None:
        if self.fmt == "geojson":
            self.f.write("\n]}\n")
            self.f.close()
        else:
            if self.count == 0:  # an empty layer, so the file still opens
                self.add(np.empty(0, object), np.empty(0, np.int64))
            from .vector_style import store_gpkg_style

            store_gpkg_style(self.dest, LAYER, self.classes)  # QGIS draws it by class

    def abort(self) -> None:
        if self.fmt == "geojson" and not self.f.closed:
            self.f.close()


def _affine(geoms: np.ndarray, m: list[float]) -> np.ndarray:
    """Pixel (col, row) coordinates -> the raster's CRS by its geotransform."""
    import shapely

    a, b, d, e, xoff, yoff = m
    return shapely.transform(
        geoms,
        lambda c: np.column_stack(
            [a * c[:, 0] + b * c[:, 1] + xoff, d * c[:, 0] + e * c[:, 1] + yoff]
        ),
    )


def area_function(crs, transform):
    """Polygon areas in m^2: planar in a projected CRS (times its unit in metres, squared),
    geodesic on the ellipsoid for a geographic CRS; without a CRS, in the transform's units."""
    import shapely

    if crs is None:
        return shapely.area
    from pyproj import CRS

    p = CRS.from_wkt(crs.to_wkt())
    if p.is_geographic:
        geod = p.get_geod()
        return lambda g: np.array([abs(geod.geometry_area_perimeter(x)[0]) for x in g])
    f = [a.unit_conversion_factor for a in p.axis_info if a.unit_conversion_factor] or [1.0]
    return lambda g: shapely.area(g) * f[0] * f[-1]
