"""The Processing provider and the plugin object QGIS creates (``classFactory``)."""

from qgis.core import QgsApplication, QgsProcessingProvider

from .finetune import Finetune
from .segment import Segment
from .zonal import ZonalStats


class Provider(QgsProcessingProvider):
    def id(self):
        return "aerialseg"

    def name(self):
        return "aerialseg"

    def longName(self):  # noqa: N802 - QGIS's names
        return "aerialseg: land-cover maps from aerial photos"

    def loadAlgorithms(self):  # noqa: N802
        for alg in (Segment(), Finetune(), ZonalStats()):
            self.addAlgorithm(alg)

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        return ["tif"]  # aerialseg writes GeoTIFFs; they are moved into place, not converted

    def supportedOutputVectorLayerExtensions(self):  # noqa: N802
        return ["gpkg"]  # likewise GeoPackages


class Plugin:
    """Registers the provider; ``initProcessing`` is what qgis_process calls (no GUI)."""

    def __init__(self, iface):
        self.iface, self.provider = iface, None

    def initProcessing(self):  # noqa: N802
        if self.provider is None:
            self.provider = Provider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
