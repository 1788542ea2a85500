"""Labels from GIS vector files (GeoPackage, GeoJSON, Shapefile...): how GIS users make
training and reference data - polygons drawn over the imagery, each with a class attribute.

The shapes are burned onto each image's own pixel grid (a pixel is labelled when its centre
lies inside a shape; 255 elsewhere), after reprojecting them from the layer's CRS to the
image's, whatever either is.

- Polygons label their area. Lines label a band ``line_width`` metres wide: each line is
  buffered in an azimuthal equidistant projection centred on the layer's lines (true metres
  near that centre: the error grows with the square of the distance from it, under 0.01 %
  within 100 km), then taken back to the layer's CRS. So the width is metric whatever the
  CRS of the layer or the image (degrees, or the inflated metres of Web Mercator). Points
  are refused: they have no extent to label.
- Where shapes of different classes overlap, the smaller shape wins (a building drawn inside
  a land parcel keeps its class); between shapes of equal area, the later feature wins.
- Invalid geometries (self-intersections...) are repaired with ``make_valid``; those with
  nothing polygonal left are skipped. Either is counted in one line.

GDAL (through pyogrio and rasterio), shapely and pyproj are the optional ``geo`` extra: they
are imported inside the functions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..classes import IGNORE_INDEX, ClassTable
from ..errors import AerialSegError
from .geometry import (
    LONLAT,
    Grid,
    buffer_metres,
    extent,
    grid_box,
    image_grid,
    need_geo,
    repaired,
    to_crs,
)

if TYPE_CHECKING:  # the data module imports torch: only where samples are made
    from ..data.segmentation import Pair, Sample

VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gml", ".kml", ".sqlite")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class VectorOptions:
    """How to read a vector file as labels: the attribute holding the class (a class name
    or index), the layer (needed when the file has several), the width of line features."""

    class_field: str
    layer: str | None = None
    line_width: float | None = None


def is_vector_file(path: str | Path) -> bool:
    """Whether ``path`` names a vector file (by its suffix), not a folder of label images."""
    path = Path(path)
    return path.suffix.lower() in VECTOR_SUFFIXES and not path.is_dir()


@dataclass
class Shapes:
    """A layer's shapes as polygons in the layer's CRS, with each one's class index."""

    path: Path
    geoms: np.ndarray  # shapely polygons / multipolygons
    labels: np.ndarray  # uint8
    crs: object  # pyproj.CRS


def _layer_name(path: Path, layer: str | None) -> str:
    """The layer to read: ``layer``, or the file's only one with geometries (tables without,
    such as the ``layer_styles`` QGIS and aerialseg keep in a GeoPackage, are no labels)."""
    import pyogrio

    if not path.exists():
        raise AerialSegError(f"{path}: no such vector file")
    try:
        listed = pyogrio.list_layers(path)
        names = [str(n) for n in listed[:, 0]]
    except Exception as e:  # noqa: BLE001 - GDAL's errors have many types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AerialSegError(f"{path}: cannot open as a vector file ({reason})") from None
    if not names:
        raise AerialSegError(f"{path}: has no layer")
    if layer is not None and layer not in names:
        raise AerialSegError(f"{path}: no layer {layer!r}; its layers: {', '.join(names)}")
    spatial = [str(n) for n, geometry in listed if geometry is not None] or names
    if layer is None and len(spatial) > 1:
        raise AerialSegError(
            f"{path}: has {len(spatial)} layers, pick one with --layer: " + ", ".join(spatial)
        )
    return layer or spatial[0]


def _class_indices(values: np.ndarray, classes: ClassTable, where: str) -> np.ndarray:
    """Class names (any case) or integer indices -> uint8 class indices."""
    by_name = {n.lower(): i for i, n in enumerate(classes.names)}
    out = np.empty(len(values), dtype=np.uint8)
    for j, v in enumerate(values):
        key = str(v).strip()
        if isinstance(v, (int, np.integer, float, np.floating)) and float(v).is_integer():
            key = str(int(v))  # a Shapefile's numeric fields are often reals
        if key.lower() in by_name:
            out[j] = by_name[key.lower()]
        elif key.isdigit() and int(key) < len(classes):
            out[j] = int(key)
        else:
            listed = ", ".join(f"{i} {n}" for i, n in enumerate(classes.names))
            raise AerialSegError(
                f"{where}: value {v!r} (feature {j + 1}) is no class; the classes: {listed}"
            )
    return out


def check_layer(vector_path: str | Path, options: VectorOptions) -> tuple[str, str]:
    """(layer name, CRS) once the file opens, the layer is there and has the class field and
    a CRS: the mistakes found without reading a feature, so commands find them at once."""
    need_geo()
    import pyogrio

    path = Path(vector_path)
    name = _layer_name(path, options.layer)
    where = f"{path} (layer {name})"
    info = pyogrio.read_info(path, layer=name)
    fields = [str(f) for f in info["fields"]]
    field = options.class_field
    if not field or field not in fields:
        what = f"no field {field!r}" if field else "no --class-field given"
        raise AerialSegError(f"{where}: {what}; its fields: {', '.join(fields) or '(none)'}")
    if not info["crs"]:
        raise AerialSegError(f"{where}: has no coordinate system (CRS); assign one in a GIS")
    return name, info["crs"]


def read_shapes(
    vector_path: str | Path,
    classes: ClassTable,
    class_field: str | None,
    layer: str | None = None,
    line_width: float | None = None,
    log: Callable[[str], None] = _stderr,
) -> Shapes:
    """One layer's features as class-labelled polygons (lines buffered, see the module)."""
    import pyogrio.raw
    import shapely
    from pyproj import CRS

    path = Path(vector_path)
    name, crs = check_layer(path, VectorOptions(class_field, layer, line_width))
    where = f"{path} (layer {name})"
    _, _, wkb, (values,) = pyogrio.raw.read(path, layer=name, columns=[class_field])
    if len(wkb) == 0:
        raise AerialSegError(f"{where}: the layer is empty")
    geoms = shapely.from_wkb(wkb)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms, values = geoms[keep], values[keep]
    if not len(geoms):
        raise AerialSegError(f"{where}: no feature has a geometry")
    labels = _class_indices(values, classes, f"{where}, field {class_field!r}")
    kinds = shapely.get_type_id(geoms)
    if np.isin(kinds, (0, 4)).any():  # Point, MultiPoint
        n = int(np.isin(kinds, (0, 4)).sum())
        raise AerialSegError(f"{where}: {n} point features; labels need polygons (or lines)")
    crs = CRS.from_user_input(crs)
    lines = np.isin(kinds, (1, 2, 5))  # LineString, LinearRing, MultiLineString
    if lines.any():
        if not line_width or line_width <= 0:
            raise AerialSegError(
                f"{where}: {int(lines.sum())} line features; give --line-width METRES"
            )
        geoms[lines] = buffer_metres(geoms[lines], crs, line_width / 2, where)
    geoms, labels = repaired(geoms, labels, where, log)
    return Shapes(path, geoms, labels, crs)


def burn(shapes: Shapes, grid: Grid, cache: dict | None = None) -> np.ndarray:
    """(H, W) uint8 labels of ``shapes`` on ``grid`` (255 outside every shape); smaller
    shapes are burned last, so they win. ``cache``: shapes already in a CRS, by CRS."""
    import shapely
    from rasterio.features import rasterize

    key = grid.crs.to_wkt()
    if cache is None or key not in cache:
        where = f"{shapes.path} -> {grid.path}"
        geoms = to_crs(shapes.geoms, shapes.crs, grid.crs, where)
        order = np.argsort(-shapely.area(geoms), kind="stable")  # ties: file order
        found = (geoms[order], shapes.labels[order])
        if cache is not None:
            cache[key] = found
    else:
        found = cache[key]
    geoms, labels = found
    box = shapely.box(*grid.bounds)
    hit = shapely.intersects(geoms, box)
    out = np.full((grid.height, grid.width), IGNORE_INDEX, dtype=np.uint8)
    if hit.any():
        pairs = zip(geoms[hit], labels[hit].tolist())
        rasterize(pairs, out=out, transform=grid.transform, dtype=np.uint8)
    return out


def rasterize_labels(
    vector_path: str | Path,
    image_path: str | Path,
    classes: ClassTable,
    class_field: str | None,
    layer: str | None = None,
    line_width: float | None = None,
) -> np.ndarray:
    """(H, W) uint8 labels of the shapes of ``vector_path`` on the grid of ``image_path``,
    255 outside every shape. ``class_field`` holds class names (any case) or indices."""
    shapes = read_shapes(vector_path, classes, class_field, layer, line_width)
    grid = image_grid(image_path)
    labels = burn(shapes, grid)
    if not (labels != IGNORE_INDEX).any():
        raise _no_overlap(shapes, [grid])
    return labels


def _no_overlap(shapes: Shapes, grids: list[Grid]) -> AerialSegError:
    """The error for shapes that label no pixel: both extents in longitude/latitude."""
    from pyproj import CRS

    lonlat = CRS.from_user_input(LONLAT)
    where = f"{shapes.path} -> {LONLAT}"
    mine = extent(to_crs(shapes.geoms, shapes.crs, lonlat, where))
    boxes = [to_crs(np.array([grid_box(g)]), g.crs, lonlat, where)[0] for g in grids]
    theirs = extent(np.array(boxes))
    what = grids[0].path.name if len(grids) == 1 else f"{len(grids)} images"
    return AerialSegError(
        f"{shapes.path}: the shapes label no pixel of {what}; shapes span {mine}, the "
        f"image{'s' * (len(grids) > 1)} {theirs} (lon/lat, {LONLAT})"
    )


def image_folder(images: str | Path) -> Path:
    """The folder of images: ``images/images`` when it has one (a dataset root), else itself."""
    images = Path(images)
    if not images.is_dir():
        raise AerialSegError(f"{images}: no such folder of images")
    return images / "images" if (images / "images").is_dir() else images


def vector_pairs(images: str | Path, vector_path: str | Path) -> list[Pair]:
    """Every image of the folder, each paired with the vector file (ids: the file stems,
    as :func:`~aerialseg.data.segmentation.pair_folders` names them)."""
    from ..data.segmentation import Pair, list_images

    files = list_images(image_folder(images))
    return [Pair(stem, "", path, Path(vector_path)) for stem, path in files.items()]


def vector_samples(
    images: str | Path,
    vector_path: str | Path,
    classes: ClassTable,
    options: VectorOptions,
    min_size: int = 0,
    log: Callable[[str], None] = _stderr,
) -> list[Sample]:
    """The georeferenced images of the folder that the shapes label, with those labels, as
    :func:`~aerialseg.data.segmentation.load_sample` makes them; images the shapes miss (or
    without georeferencing) are skipped, and one line says how many."""
    pairs = vector_pairs(images, vector_path)
    if not pairs:
        raise AerialSegError(f"{image_folder(images)}: no images found")
    shapes = read_shapes(
        vector_path, classes, options.class_field, options.layer, options.line_width, log
    )
    cache: dict = {}
    samples, grids, plain = [], [], 0
    for pair in pairs:
        grid = image_grid(pair.image, required=False)
        if grid is None:
            plain += 1
            continue
        grids.append(grid)
        labels = burn(shapes, grid, cache)
        if (labels != IGNORE_INDEX).any():
            samples.append(_sample(pair, labels, min_size))
    if not grids:
        raise AerialSegError(
            f"{image_folder(images)}: no georeferenced image ({len(pairs)} images): vector "
            "labels need images with a CRS and geotransform"
        )
    if not samples:
        raise _no_overlap(shapes, grids)
    missed = len(grids) - len(samples)
    note = f", {plain} not georeferenced" if plain else ""
    log(
        f"{shapes.path}: labels {len(samples)} of {len(pairs)} images "
        f"({missed} the shapes miss{note}: skipped)"
    )
    return samples


def _sample(pair: Pair, labels: np.ndarray, min_size: int) -> Sample:
    from ..data.segmentation import Sample
    from ..io.images import read_image

    image = read_image(pair.image, strict=True)
    if labels.shape != image.shape[:2]:  # a raster whose picture reader disagrees with GDAL
        raise AerialSegError(f"{pair.image}: image size differs from its georeferenced grid")
    if min(image.shape[:2]) < min_size:
        raise AerialSegError(
            f"{pair.image}: {image.shape[1]}x{image.shape[0]} is smaller than the "
            f"{min_size}x{min_size} patch size"
        )
    return Sample(pair.id, pair.group, image, labels)
