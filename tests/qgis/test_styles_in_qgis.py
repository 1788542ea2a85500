"""What QGIS itself draws when it opens aerialseg's files: the polygons GeoPackage by class
from the style stored in it, the labels GeoTIFF from its .qml, both in the display colours.
QGIS's Python (``qgis.core``) lives in the system Python, not in aerialseg's environment, so
the check runs there in a subprocess. Skips where QGIS is absent."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("pyogrio")

from aerialseg.classes import DUBAI  # noqa: E402
from aerialseg.gis.outputs import write_label_geotiff  # noqa: E402
from aerialseg.gis.vectors import polygonize_to_file  # noqa: E402

from ..geo_helpers import write_raster  # noqa: E402

QGIS_PYTHON = "/usr/bin/python3"

LOOK = """
import json, sys
from qgis.core import QgsApplication, QgsProviderRegistry, QgsRasterLayer, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
gpkg, tif = sys.argv[1:3]
layer = QgsVectorLayer(gpkg, "dropped", "ogr")  # as a file dropped onto the map
r = layer.renderer()
cats = r.categories() if r.type() == "categorizedSymbol" else []
labels = QgsRasterLayer(tif, "labels", "gdal")  # kept: the renderer is the layer's
raster = labels.renderer()
print(json.dumps({
    "vector": r.type(),
    "field": r.classAttribute() if cats else None,
    "categories": [[c.value(), c.symbol().color().name(), c.symbol().color().alpha()]
                   for c in cats],
    "sublayers": [s.name() for s in QgsProviderRegistry.instance().querySublayers(gpkg)],
    "raster": raster.type(),
    "palette": [[c.label, c.color.name(), c.color.alpha()] for c in raster.classes()]
               if raster.type() == "paletted" else [],
}))
del r, cats, raster, layer, labels
app.exitQgis()
"""


@pytest.fixture(scope="module")
def qgis_python() -> str:
    has = Path(QGIS_PYTHON).exists() and subprocess.run(
        [QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True
    ).returncode == 0  # fmt: skip
    if not has:
        pytest.skip("QGIS's Python (python3-qgis) not installed")
    return QGIS_PYTHON


def test_qgis_draws_the_polygons_and_labels_by_class_in_the_display_colours(qgis_python, tmp_path):
    labels = np.full((40, 40), 1, np.uint8)  # Land
    labels[:20, :20], labels[20:, 20:], labels[30:, :10] = 4, 3, 5  # Water, Vegetation, Unl.
    labels[:4, 30:] = 0  # Building
    tif = write_raster(tmp_path / "labels.tif", labels[None], nodata=255)
    gpkg = tmp_path / "polygons.gpkg"
    polygonize_to_file(tif, gpkg, DUBAI, "gpkg")
    with rasterio.open(tif) as like:
        styled = write_label_geotiff(tmp_path, "x", labels, DUBAI, like)["labels_tif"]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run(
        [qgis_python, "-c", LOOK, str(gpkg), str(styled)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    shown = {n: ("#{:02x}{:02x}{:02x}".format(*c[:3]), c[3]) for n, c in
             zip(DUBAI.names, DUBAI.display)}  # fmt: skip
    assert seen["vector"] == "categorizedSymbol" and seen["field"] == "class"
    assert {n: (c, a) for n, c, a in seen["categories"]} == shown
    assert shown["Water"] == ("#1f78b4", 255) and shown["Unlabeled"][1] == 0
    assert seen["sublayers"] == ["polygons"]  # dropped, it opens without asking which layer
    assert seen["raster"] == "paletted"
    assert {n: (c, a) for n, c, a in seen["palette"]} == shown


def test_the_plugin_reads_the_statistics_colours_with_their_alpha(qgis_python):
    """Qt reads ``#RRGGBBAA`` as #AARRGGBB: the plugin's categories must split the alpha off."""
    plugin_parent = Path(__file__).resolve().parents[2] / "src" / "aerialseg"
    code = (
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False)\n"
        "from qgis_plugin.common import qcolor\n"
        "for t in ('#1F78B4', 'transparent', '#AA885580'):\n"
        "    c = qcolor(t)\n"
        "    print(c.name(), c.alpha())\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(plugin_parent)}
    r = subprocess.run([qgis_python, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["#1f78b4", "255", "#000000", "0", "#aa8855", "128"]
