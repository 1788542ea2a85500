"""What the algorithms share: the input raster's file, a work folder beside the outputs,
running aerialseg (``runner``) with QGIS's messages, and styling the layers QGIS loads."""

import json
import shutil
import tempfile
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRaster,
    QgsRendererCategory,
    QgsSymbol,
)
from qgis.PyQt.QtGui import QColor

from . import runner

_KEEP = []  # post-processors must outlive the algorithm that set them (QGIS holds no ref)
# aerialseg's messages name its flags; a QGIS user sees these parameters
PARAMETER_OF = {"--bands": "BANDS", "--nodata": "NODATA", "--input-gsd": "INPUT_GSD",
                "--model": "MODEL"}  # fmt: skip


class Algorithm(QgsProcessingAlgorithm):
    """Base of the aerialseg algorithms: the group and the shared parameters."""

    def group(self):
        return "aerialseg"

    def groupId(self):  # noqa: N802 - QGIS's names
        return "aerialseg"

    def createInstance(self):  # noqa: N802
        return type(self)()

    def add_raster_inputs(self):
        """INPUT and how it is read and segmented: the flags of ``aerialseg segment``."""
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Aerial photo (raster)"))
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                "Model file (empty: the bundled model)",
                fileFilter="Models (*.safetensors *.onnx)",
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterBoolean("TTA", "Average 8 flips/rotations", False))
        self.addParameter(
            QgsProcessingParameterBoolean(
                "INT8",
                "int8 (faster on the CPU; needs onnxruntime and the model's int8 ranges)",
                False,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "NODATA",
                "No-data value (e.g. 0: black borders)",
                QgsProcessingParameterNumber.Double,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString("BANDS", "Bands R,G,B (empty: automatic)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "INPUT_GSD",
                "Input resolution, m/pixel (resampled to the model's)",
                QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.001,
            )
        )

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """A vector file given as INPUT: QGIS alone would say it was "not found"."""
        value = parameters.get("INPUT")
        if isinstance(value, str) and is_vector_file(value):
            return False, f"INPUT: {value} is a vector layer; give a raster (the aerial photo)"
        return super().checkParameterValues(parameters, context)

    def segment_flags(self, parameters, context) -> list:
        """The ``segment`` flags of the shared parameters."""
        flags = []
        model = self.parameterAsFile(parameters, "MODEL", context)
        if model:
            flags += ["--model", model]
        if self.parameterAsBoolean(parameters, "TTA", context):
            flags.append("--tta")
        if self.parameterAsBoolean(parameters, "INT8", context):
            flags += ["--precision", "int8"]
        if parameters.get("NODATA") is not None:
            flags += ["--nodata", repr(self.parameterAsDouble(parameters, "NODATA", context))]
        bands = self.parameterAsString(parameters, "BANDS", context).strip()
        if bands:
            flags += ["--bands", bands]
        if parameters.get("INPUT_GSD") is not None:
            flags += ["--input-gsd", repr(self.parameterAsDouble(parameters, "INPUT_GSD", context))]
        return flags


def is_vector_file(path: str) -> bool:
    """Whether ``path`` is a file GDAL opens as vectors only."""
    from .gdal_steps import opens

    path = path.split("|")[0]
    return Path(path).is_file() and opens(path, "vector") and not opens(path, "raster")


def raster_file(alg, parameters, context, feedback) -> str:
    """The file behind the INPUT layer (aerialseg reads files, not QGIS's providers)."""
    layer = alg.parameterAsRasterLayer(parameters, "INPUT", context)
    if layer is None:
        raise QgsProcessingException("INPUT: not a raster layer")
    check_bands(layer, alg.parameterAsString(parameters, "BANDS", context).strip())
    if layer.crs().isGeographic():
        feedback.pushWarning(
            f"INPUT is in a geographic CRS ({layer.crs().authid()}): mapped on its own grid, "
            "not reprojected; areas are geodesic m². Pixels are not square on the ground away "
            "from the equator: for the best map, reproject it to a metric CRS first"
        )
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"INPUT {layer.name()}: a {layer.providerType()} layer; aerialseg reads raster "
            "files (save it as a GeoTIFF first)"
        )
    return layer.source().split("|")[0]


def check_bands(layer, bands: str) -> None:
    """aerialseg reads bands 1,2,3 of a raster whose colour interpretation names no red,
    green and blue: right for RGB, RGBA and RGB+NIR, a guess beyond 4 bands, so ask."""
    n = layer.bandCount()
    if bands or n <= 4:
        return
    seen = {layer.dataProvider().colorInterpretation(b) for b in range(1, n + 1)}
    if {QgsRaster.RedBand, QgsRaster.GreenBand, QgsRaster.BlueBand} <= seen:
        return
    raise QgsProcessingException(
        f"INPUT {layer.name()}: has {n} bands; say which are red, green and blue in BANDS "
        "(e.g. 3,2,1)"
    )


def work_dir(next_to: str) -> Path:
    """A temporary folder beside an output, so that results are moved into place by rename."""
    folder = Path(next_to).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".aerialseg-", dir=folder))
    except OSError as e:
        raise QgsProcessingException(f"{folder}: cannot write there ({e.strerror})") from None


def run(args: list, feedback, outputs=()):
    """aerialseg ARGS in its environment; its failure as one QgsProcessingException."""
    try:
        return runner.run(args, feedback, outputs)
    except (runner.Canceled, runner.EnvironmentMissing, runner.RunFailed) as e:
        raise QgsProcessingException(parameter_names(str(e))) from None


def parameter_names(message: str) -> str:
    """aerialseg's message with its flags named as this plugin's parameters."""
    for flag, name in PARAMETER_OF.items():
        message = message.replace(flag, name)
    return message


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise QgsProcessingException(f"aerialseg wrote no {pattern} in {folder}")
    return found[0]


def classes(stats_json: Path) -> list:
    """[(name, "#RRGGBB")] from the statistics aerialseg wrote."""
    return [(c["class"], c["color"]) for c in json.loads(stats_json.read_text())["classes"]]


class StyleFromQml(QgsProcessingLayerPostProcessorInterface):
    """Loads a layer with its QML style (class colours and names)."""

    def __init__(self, qml: str):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        layer.loadNamedStyle(self.qml)
        layer.triggerRepaint()


class ClassCategories(QgsProcessingLayerPostProcessorInterface):
    """Draws polygons by their ``class`` field, in the display colours (the GeoPackage holds
    the same style, but Processing loads its outputs without a layer's stored style)."""

    def __init__(self, table: list):
        super().__init__()
        self.table = table

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        layer.setRenderer(class_renderer(layer, self.table))
        layer.triggerRepaint()


def class_renderer(layer, table: list):
    cats = []
    for name, color in table:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(qcolor(color))
        cats.append(QgsRendererCategory(name, symbol, name))
    return QgsCategorizedSymbolRenderer("class", cats)


def qcolor(text: str) -> QColor:
    """A statistics colour (``#RRGGBB``, CSS's ``#RRGGBBAA``, ``transparent``) as a QColor:
    Qt reads an 8-digit hex as #AARRGGBB, so the alpha is split off here."""
    if text.startswith("#") and len(text) == 9:
        color = QColor(text[:7])
        color.setAlpha(int(text[7:], 16))
        return color
    return QColor(text)


def style_on_load(context, output: str, processor) -> None:
    """Give the layer QGIS loads for ``output`` (if it loads it) a post-processor."""
    if output and context.willLoadLayerOnCompletion(output):
        _KEEP.append(processor)
        context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
