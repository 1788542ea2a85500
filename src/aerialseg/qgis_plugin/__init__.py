"""The aerialseg QGIS plugin: a Processing provider ``aerialseg`` (segment, finetune,
zonal_stats). QGIS imports this package from its own Python, which has no torch: every
algorithm runs aerialseg in its own environment as a child process (see ``runner.py``).
Importing this package imports nothing of QGIS; ``classFactory`` does, when QGIS calls it.
``aerialseg qgis install`` copies these files into a QGIS profile."""


def classFactory(iface):  # noqa: N802 - the name QGIS calls
    from .provider import Plugin

    return Plugin(iface)
