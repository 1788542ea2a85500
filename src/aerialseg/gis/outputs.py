"""The files of a georeferenced result, by name: the label GeoTIFF with its legend files,
optional confidence, probabilities, polygons and zones; and the minimum mapping unit of the
polygons. What fills them is :mod:`aerialseg.jobs.raster`."""

from __future__ import annotations

from pathlib import Path

from ..errors import AerialSegError
from ..io.files import write_text

SUFFIXES = {
    "labels": "_labels.tif",
    "labels_aux": "_labels.tif.aux.xml",  # category names (GDAL, ArcGIS)
    "labels_qml": "_labels.qml",  # QGIS style: display colours and names in the legend
    "stats_json": "_stats.json",
    "stats_csv": "_stats.csv",
}
VECTOR_SUFFIXES = {"gpkg": "_polygons.gpkg", "geojson": "_polygons.geojson"}


def geo_output_paths(
    out_dir: Path,
    stem: str,
    confidence: bool = False,
    probabilities: bool = False,
    vector: str | None = None,
    zones: bool = False,
) -> dict[str, Path]:
    """The outputs of raster ``stem`` in ``out_dir``: always the labels, their legend files
    and the statistics; ``vector`` "gpkg" or "geojson" adds the polygons."""
    paths = {k: out_dir / f"{stem}{s}" for k, s in SUFFIXES.items()}
    if confidence:
        paths["confidence"] = out_dir / f"{stem}_confidence.tif"
    if probabilities:
        paths["probs"] = out_dir / f"{stem}_probs.tif"
    if vector:
        paths["polygons"] = out_dir / f"{stem}{VECTOR_SUFFIXES[vector]}"
    if zones:
        paths["zones_csv"] = out_dir / f"{stem}_zones.csv"
        paths["zones_gpkg"] = out_dir / f"{stem}_zones.gpkg"
    return paths


def write_label_geotiff(folder: Path, stem: str, labels, classes, like) -> dict[str, Path]:
    """A label map held in memory (the app's) as ``STEM_labels.tif`` with its legend files,
    the same as ``segment`` writes for a raster; ``like`` gives the CRS and transform."""
    from .geotiff import GeoTiffWriter, aux_xml, qgis_style

    paths = {k: folder / f"{stem}{SUFFIXES[k]}" for k in ("labels", "labels_aux", "labels_qml")}
    paths["labels_tif"] = paths.pop("labels")  # "labels" is the PNG's key in a saved result
    writer = GeoTiffWriter(
        paths["labels_tif"], like, 1, nodata=255, classes=classes, descriptions=["class"]
    )
    try:
        writer.write(0, 0, labels)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    write_text(paths["labels_aux"], aux_xml(classes))
    write_text(paths["labels_qml"], qgis_style(classes))
    return paths


def parse_mmu(text: str) -> tuple[float, str]:
    """``--mmu``: square metres (``25``, ``25m2``) or pixels (``16px``); 0: none."""
    t = text.strip().lower()
    unit = "px" if t.endswith("px") else "m2"
    number = t.removesuffix("px").removesuffix("m2").removesuffix("m²").strip()
    try:
        value = float(number)
        if value < 0 or value != value:
            raise ValueError
    except ValueError:
        raise AerialSegError(
            f"--mmu {text}: expected an area in square metres (e.g. 25) or pixels (e.g. 16px)"
        ) from None
    return value, unit


def mmu_pixels(mmu: tuple[float, str], row_area) -> float:
    """The minimum mapping unit in pixels (square metres by the raster's middle row)."""
    value, unit = mmu
    if unit == "px" or value == 0:
        return value
    if row_area is None:
        raise AerialSegError("--mmu in square metres needs a CRS (or --gsd); give pixels: 16px")
    return value / float(row_area[len(row_area) // 2])
