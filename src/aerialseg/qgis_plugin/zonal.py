"""``aerialseg:zonal_stats``: land-cover areas and shares per polygon of a zone layer
(``aerialseg segment --zones``: the raster is segmented, then counted per zone)."""

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterVectorDestination,
)

from . import common


class ZonalStats(common.Algorithm):
    def name(self):
        return "zonal_stats"

    def displayName(self):  # noqa: N802 - QGIS's names
        return "Land cover per zone"

    def shortHelpString(self):  # noqa: N802
        return (
            "Segments the raster and gives each zone (parcels, districts...) its area (m²) "
            "and share (%) of every class, and of no data. A pixel belongs to a zone when its "
            "centre lies inside; zones may overlap and be in any CRS."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_inputs()
        self.addParameter(
            QgsProcessingParameterFeatureSource("ZONES", "Zones", [QgsProcessing.TypeVectorPolygon])
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                "OUTPUT", "Land cover per zone", QgsProcessing.TypeVectorPolygon
            )
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        source = common.raster_file(self, parameters, context, feedback)
        zones = self.parameterAsCompatibleSourceLayerPath(
            parameters, "ZONES", context, ["gpkg", "shp", "geojson"], "gpkg", feedback
        )
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        work = common.work_dir(out)
        try:
            args = ["segment", source, "--out", work, "--zones", zones, "--overwrite"]
            common.run(args + self.segment_flags(parameters, context), feedback)
            os.replace(common.one(work, "*_zones.gpkg"), out)
        finally:
            common.remove_dir(work)
        return {"OUTPUT": out}
