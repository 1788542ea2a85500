"""``aerialseg:segment``: a raster layer -> land-cover labels GeoTIFF (styled), and
optionally polygons, a confidence raster and a table of hectares per class."""

import os
from pathlib import Path

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from . import common, gdal_steps

TABLE_FIELDS = (
    ("class", QVariant.String),
    ("pixels", QVariant.LongLong),
    ("percent", QVariant.Double),
    ("area_m2", QVariant.Double),
    ("area_ha", QVariant.Double),
)


class Segment(common.Algorithm):
    def name(self):
        return "segment"

    def displayName(self):  # noqa: N802 - QGIS's names
        return "Segment land cover"

    def shortHelpString(self):  # noqa: N802
        return (
            "Maps Building, Land, Road, Vegetation and Water on an aerial photo with a U-Net, "
            "on the CPU, in bounded memory. The labels GeoTIFF keeps the input's CRS and grid "
            "and carries class names and colours. No-data value: pixels whose bands all equal "
            "it (black or white borders) are left out of every output, as are the pixels "
            "outside the mask polygons, if given (a pixel is inside when its centre is). Runs "
            "the aerialseg "
            "environment recorded by `aerialseg qgis install` (or AERIALSEG_PYTHON)."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_inputs()
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Only this extent", optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "MASK", "Only inside these polygons", [QgsProcessing.TypeVectorPolygon],
                optional=True,
            )
        )  # fmt: skip
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Land cover"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                "OUTPUT_VECTOR",
                "Land-cover polygons",
                QgsProcessing.TypeVectorPolygon,
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_CONFIDENCE", "Confidence (x255)", optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_TABLE",
                "Hectares per class",
                QgsProcessing.TypeVector,
                optional=True,
                createByDefault=False,
            )
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        source = common.raster_file(self, parameters, context, feedback)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        vector = self.parameterAsOutputLayer(parameters, "OUTPUT_VECTOR", context)
        confidence = self.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)
        work = common.work_dir(out)
        try:
            image = self._clipped(source, parameters, context, work) or source
            image = self._masked(image, parameters, context, work, feedback)
            args = ["segment", image, "--out", work / "out", "--overwrite"]
            args += self.segment_flags(parameters, context)
            args += ["--vector"] * bool(vector) + ["--confidence"] * bool(confidence)
            common.run(args, feedback)
            done = work / "out"
            stats = common.one(done, "*_stats.json")
            results = self._place(done, out, vector, confidence)
            table = common.classes(stats)
            if parameters.get("OUTPUT_TABLE") is not None:
                results["OUTPUT_TABLE"] = self._table(parameters, context, stats)
        finally:
            common.remove_dir(work)
        common.style_on_load(context, out, common.StyleFromQml(str(Path(out).with_suffix(".qml"))))
        common.style_on_load(context, vector, common.ClassCategories(table))
        return results

    def _clipped(self, source, parameters, context, work: Path):
        """A VRT of the asked-for extent (no copy of the pixels), or None for all of it."""
        if parameters.get("EXTENT") is None:
            return None
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        box = self.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
        if box.isNull() or box.isEmpty():
            return None
        return gdal_steps.extent_vrt(source, box, str(work / "extent.vrt"))

    def _masked(self, image, parameters, context, work: Path, feedback):
        """``image`` with no data outside the MASK polygons (a VRT with an alpha band), or
        ``image`` itself without a MASK."""
        if parameters.get("MASK") is None:
            return image
        polygons = self.parameterAsCompatibleSourceLayerPath(
            parameters, "MASK", context, ["gpkg", "shp", "geojson"], "gpkg", feedback
        )
        return gdal_steps.masked_vrt(image, polygons, str(work / "masked.vrt"))

    def _place(self, done: Path, out: str, vector: str, confidence: str) -> dict:
        """Move aerialseg's files to the outputs QGIS asked for (same folder: a rename)."""
        labels = common.one(done, "*_labels.tif")
        moves = [(labels, out), (labels.with_suffix(".qml"), str(Path(out).with_suffix(".qml")))]
        moves.append((common.one(done, "*_labels.tif.aux.xml"), out + ".aux.xml"))
        if vector:
            moves.append((common.one(done, "*_polygons.gpkg"), vector))
        if confidence:
            moves.append((common.one(done, "*_confidence.tif"), confidence))
        for src, dst in moves:
            os.replace(src, dst)
        results = {"OUTPUT": out}
        if vector:
            results["OUTPUT_VECTOR"] = vector
        if confidence:
            results["OUTPUT_CONFIDENCE"] = confidence
        return results

    def _table(self, parameters, context, stats: Path) -> str:
        import json

        fields = QgsFields()
        for name, kind in TABLE_FIELDS:
            fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(
            parameters, "OUTPUT_TABLE", context, fields, QgsWkbTypes.NoGeometry
        )
        for row in json.loads(stats.read_text())["classes"]:
            f = QgsFeature(fields)
            f.setAttributes([row.get(name) for name, _ in TABLE_FIELDS])
            sink.addFeature(f, QgsFeatureSink.FastInsert)
        return dest
