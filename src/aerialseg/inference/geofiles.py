"""Files written for a georeferenced raster: label GeoTIFF (with colour table, legend and
overviews, or a COG), confidence and probability GeoTIFFs, polygons, area statistics.

Every file lands exactly where its input is (the input's CRS and transform), is written to a
temporary name and renamed only once all of them are complete, and no file or array the size
of the raster is ever held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AerialSegError
from ..io.files import write_text
from .confidence import unusual
from .familiarity import familiarity_stats, raster_familiarity
from .outputs import staged, write_stats

SUFFIXES = {
    "labels": "_labels.tif",
    "labels_aux": "_labels.tif.aux.xml",  # category names (GDAL, ArcGIS)
    "labels_qml": "_labels.qml",  # QGIS style: display colours and names in the legend
    "stats_json": "_stats.json",
    "stats_csv": "_stats.csv",
}
VECTOR_SUFFIXES = {"gpkg": "_polygons.gpkg", "geojson": "_polygons.geojson"}


@dataclass
class GeoOptions:
    """What to read and write for a georeferenced raster (the ``segment`` flags)."""

    bands: tuple[int, ...] | None = None
    scale: object = None  # io.rasters.Scale or None
    cog: bool = False
    confidence: bool = False
    probabilities: bool = False
    vector: str | None = None  # None, "gpkg" or "geojson"
    mmu: tuple[float, str] = (0.0, "px")  # minimum mapping unit: (value, "px" | "m2")
    simplify: float = 1.0  # pixels
    gsd: float | None = None  # metres per pixel, for a raster without a CRS
    zones: Path | None = None  # a vector file: class areas per zone
    nodata: float | None = None  # --nodata: pixels whose bands all equal it hold no data


def geo_output_paths(out_dir: Path, stem: str, opts: GeoOptions) -> dict[str, Path]:
    paths = {k: out_dir / f"{stem}{s}" for k, s in SUFFIXES.items()}
    if opts.confidence:
        paths["confidence"] = out_dir / f"{stem}_confidence.tif"
    if opts.probabilities:
        paths["probs"] = out_dir / f"{stem}_probs.tif"
    if opts.vector:
        paths["polygons"] = out_dir / f"{stem}{VECTOR_SUFFIXES[opts.vector]}"
    if opts.zones:
        paths["zones_csv"] = out_dir / f"{stem}_zones.csv"
        paths["zones_gpkg"] = out_dir / f"{stem}_zones.gpkg"
    return paths


def segment_raster_to_files(
    seg,
    path: Path,
    paths: dict[str, Path],
    opts: GeoOptions,
    tta: bool = False,
    on_window=None,
    resample: float = 1.0,
) -> dict:
    """Segment the raster at ``path`` in bounded memory and write all its outputs (all or
    none), on a grid of ``resample`` times its pixels per side (``--input-gsd``). Returns
    the statistics written to the JSON."""
    from ..io.rasters import RasterSource
    from .georaster import (  # torch: only once a raster is to be segmented
        ClassCounter,
        class_areas,
        confidence_of,
        labels_of,
        pixel_areas,
        probabilities_of,
        stream_raster,
    )
    from .geotiff import GeoTiffWriter, aux_xml, qgis_style

    classes = seg.classes
    with RasterSource(path, opts.bands, opts.scale, resample, opts.nodata) as src:
        row_area, area_method = pixel_areas(src, opts.gsd)  # an unknown CRS: before any work
        mmu_px = mmu_pixels(opts.mmu, row_area) if opts.vector else 0.0
        if opts.zones:
            from .zones import check_zones

            check_zones(opts.zones, src)
        with staged(paths) as tmp:
            like = src.src
            writers = {
                "labels": GeoTiffWriter(
                    tmp["labels"],
                    like,
                    1,
                    nodata=255,
                    classes=classes,
                    descriptions=["class"],
                    name=paths["labels"],
                )
            }
            try:
                if opts.confidence:
                    writers["confidence"] = GeoTiffWriter(
                        tmp["confidence"],
                        like,
                        1,
                        nodata=0,
                        descriptions=["confidence x255"],
                        name=paths["confidence"],
                    )
                if opts.probabilities:
                    writers["probs"] = GeoTiffWriter(
                        tmp["probs"],
                        like,
                        len(classes),
                        descriptions=list(classes.names),
                        mask=True,
                        name=paths["probs"],
                    )
                counter = ClassCounter(src.height, len(classes))
                sure = [0.0, 0]  # sum of the top probability over valid pixels, and their count

                def sink(row, col, probs, valid):
                    top = probs.max(-1)  # once: the warning's mean and the confidence raster
                    sure[0] += float(top[valid].sum(dtype=np.float64))
                    sure[1] += int(valid.sum())
                    labels = labels_of(probs, valid)
                    writers["labels"].write(row, col, labels)
                    counter.add(row, labels)
                    if "confidence" in writers:
                        writers["confidence"].write(row, col, confidence_of(top, valid))
                    if "probs" in writers:
                        writers["probs"].write(row, col, probabilities_of(probs, valid), valid)

                stream_raster(seg, src, [sink], tta, on_window)
                for key, writer in writers.items():
                    writer.finish(opts.cog, "nearest" if key == "labels" else "average")
            except BaseException:
                for writer in writers.values():
                    writer.abort()
                raise
            write_text(tmp["labels_aux"], aux_xml(classes))
            write_text(tmp["labels_qml"], qgis_style(classes))
            vector = None
            if opts.vector:
                from .vectors import polygonize_to_file

                vector = polygonize_to_file(
                    tmp["labels"], tmp["polygons"], classes, opts.vector, mmu_px, opts.simplify
                )
            if opts.zones:
                from .zones import zone_statistics

                zones = zone_statistics(
                    tmp["labels"],
                    opts.zones,
                    classes,
                    row_area,
                    tmp["zones_csv"],
                    tmp["zones_gpkg"],
                )
            stats, nodata = class_areas(counter, classes, row_area)
            confidence = sure[0] / max(sure[1], 1)
            near = raster_familiarity(seg, src)
            info = {
                "image": str(path),
                "width": src.width,
                "height": src.height,
                "crs": src.crs.to_string() if src.crs else None,
                "transform": list(src.transform)[:6],
                "bands": list(src.bands),
                "scale": [list(r) for r in src.ranges] if src.ranges else None,
                "model": seg.name,
                "tta": tta,
                "mean_confidence": round(confidence, 4),
                **familiarity_stats(near),
                "warning": unusual(src.sample_rgb(), confidence, seg.meta, near),
                "nodata_pixels": nodata,
                "area_method": area_method,
                "gsd_m": opts.gsd,
                "classes": stats,
            }
            if vector:
                info["polygons"] = vector
            if opts.zones:
                info["zones"] = {"file": str(opts.zones), **zones}
            write_stats(tmp, info)
            return info


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
