"""A georeferenced raster segmented into its files: label GeoTIFF (with colour table, legend
and overviews, or a COG), confidence and probability GeoTIFFs, polygons, zones, area
statistics.

Every file lands exactly where its input is (the input's CRS and transform), is written to a
temporary name and renamed only once all of them are complete, and no file or array the size
of the raster is ever held in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..gis.outputs import mmu_pixels, parse_mmu
from ..io.files import write_text
from ..io.outputs import staged, write_stats
from .image import model_stats


def segment_raster_to_files(seg, src, paths: dict, options, on_window=None) -> dict:
    """Segment the open raster ``src`` (a :class:`~aerialseg.gis.rasters.RasterSource`, on
    the grid the model is to see) in bounded memory and write all its outputs ``paths`` (all
    or none), as ``options`` (:class:`~.segment.SegmentOptions`) say. ``options.gsd`` gives
    areas where the raster has no CRS. Returns the statistics written to the JSON."""
    from ..gis.areas import (
        ClassCounter,
        class_areas,
        confidence_of,
        labels_of,
        pixel_areas,
        probabilities_of,
    )
    from ..gis.geotiff import GeoTiffWriter, aux_xml, qgis_style
    from ..inference.familiarity import raster_familiarity
    from ..inference.georaster import stream_raster  # torch: only once a raster is segmented

    tta, fmt = options.tta, options.vector_format if options.vector else None
    zones_file = Path(options.zones) if options.zones else None

    classes = seg.classes
    row_area, area_method = pixel_areas(src, options.gsd)  # an unknown CRS: before any work
    mmu_px = mmu_pixels(parse_mmu(options.mmu), row_area) if fmt else 0.0
    if zones_file:
        from ..gis.zones import check_zones

        check_zones(zones_file, src)
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
            if options.confidence:
                writers["confidence"] = GeoTiffWriter(
                    tmp["confidence"],
                    like,
                    1,
                    nodata=0,
                    descriptions=["confidence x255"],
                    name=paths["confidence"],
                )
            if options.save_probabilities:
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
                writer.finish(options.cog, "nearest" if key == "labels" else "average")
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        write_text(tmp["labels_aux"], aux_xml(classes))
        write_text(tmp["labels_qml"], qgis_style(classes))
        vector = None
        if fmt:
            from ..gis.vectors import polygonize_to_file

            vector = polygonize_to_file(
                tmp["labels"], tmp["polygons"], classes, fmt, mmu_px, options.simplify
            )
        if zones_file:
            from ..gis.zones import zone_statistics

            zones = zone_statistics(
                tmp["labels"],
                zones_file,
                classes,
                row_area,
                tmp["zones_csv"],
                tmp["zones_gpkg"],
            )
        stats, nodata = class_areas(counter, classes, row_area)
        confidence = sure[0] / max(sure[1], 1)
        model = model_stats(seg, tta, confidence, raster_familiarity(seg, src), src.sample_rgb())
        info = {
            "image": str(src.path),
            "width": src.width,
            "height": src.height,
            "crs": src.crs.to_string() if src.crs else None,
            "transform": list(src.transform)[:6],
            "bands": list(src.bands),
            "scale": [list(r) for r in src.ranges] if src.ranges else None,
            **model,
            "nodata_pixels": nodata,
            "area_method": area_method,
            "gsd_m": options.gsd,
            "classes": stats,
        }
        if vector:
            info["polygons"] = vector
        if zones_file:
            info["zones"] = {"file": str(zones_file), **zones}
        write_stats(tmp, info)
        return info
