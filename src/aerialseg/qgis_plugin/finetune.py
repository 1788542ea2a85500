"""``aerialseg:finetune``: raster layer(s) + a polygon or line layer with a class field ->
a model file, usable at once as the MODEL of ``aerialseg:segment``."""

import os
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from . import common


class Finetune(common.Algorithm):
    def name(self):
        return "finetune"

    def displayName(self):  # noqa: N802 - QGIS's names
        return "Fine-tune the model on your polygons"

    def shortHelpString(self):  # noqa: N802
        return (
            "Teaches the model your place from shapes you drew: polygons (or lines, given a "
            "width) whose class field holds a class name (Building, Land, Road, Vegetation, "
            "Water) or index. Only the pixels under the shapes are learnt. About a minute on a "
            "CPU; the new model file is a MODEL for 'Segment land cover'."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUT", "Aerial photos (rasters)", QgsProcessing.TypeRaster
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "LABELS",
                "Labels (polygons or lines)",
                [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorLine],
            )
        )
        self.addParameter(QgsProcessingParameterField("CLASS_FIELD", "Class field", None, "LABELS"))
        self.addParameter(
            QgsProcessingParameterNumber(
                "LINE_WIDTH",
                "Width of line labels (metres)",
                QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.01,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                "Model to start from (empty: the bundled model)",
                fileFilter="Models (*.safetensors)",
                optional=True,
            )
        )
        # a guard, as `aerialseg finetune --minutes` (default 10): the run is counted in steps
        self.addParameter(
            QgsProcessingParameterNumber(
                "MINUTES", "Stop after this many minutes even with steps left",
                QgsProcessingParameterNumber.Double, 10.0, minValue=0.1,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterFileDestination("OUTPUT", "New model", "Model (*.safetensors)")
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if not out.lower().endswith(".safetensors"):
            out += ".safetensors"
        work = common.work_dir(out)
        try:
            images = self._images(parameters, context, work / "images")
            labels = self.parameterAsCompatibleSourceLayerPath(
                parameters, "LABELS", context, ["gpkg", "shp", "geojson"], "gpkg", feedback
            )
            field = self.parameterAsString(parameters, "CLASS_FIELD", context)
            tmp = work / "model.safetensors"
            args = ["finetune", "--images", images, "--labels", labels, "--class-field", field]
            minutes = self.parameterAsDouble(parameters, "MINUTES", context)
            args += ["--out", tmp, "--minutes", repr(minutes)]
            model = self.parameterAsFile(parameters, "MODEL", context)
            if model:
                args += ["--model", model]
            if parameters.get("LINE_WIDTH") is not None:
                width = self.parameterAsDouble(parameters, "LINE_WIDTH", context)
                args += ["--line-width", repr(width)]
            common.run(args, feedback)
            os.replace(tmp, out)
        finally:
            common.remove_dir(work)
        return {"OUTPUT": out}

    def _images(self, parameters, context, folder: Path) -> Path:
        """A folder of the rasters' files (links; copies where links cannot be made)."""
        layers = self.parameterAsLayerList(parameters, "INPUT", context)
        if not layers:
            raise QgsProcessingException("INPUT: give at least one raster layer")
        folder.mkdir()
        for i, layer in enumerate(layers):
            if layer.providerType() != "gdal":
                raise QgsProcessingException(f"INPUT {layer.name()}: not a raster file")
            source = Path(layer.source().split("|")[0])
            link = folder / f"{i:03d}_{source.name}"
            try:
                link.symlink_to(source.resolve())
            except OSError:
                import shutil

                shutil.copy2(source, link)
        return folder
