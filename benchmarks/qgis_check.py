"""A real GIS client reads aerialseg's georeferenced outputs: QGIS opens them and draws a map.

    .venv/bin/python benchmarks/qgis_check.py --prepare runs/gis_example
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 benchmarks/qgis_check.py runs/gis_example out.png

The first step (aerialseg's Python) makes a GeoTIFF of a held-out dataset image (UTM 40N,
0.3 m, in Dubai) and segments it with ``--vector``; the second (Debian's python3 with
``python3-qgis``; headless) opens the label GeoTIFF as a QGIS user does (its .qml style is
loaded with it) and the GeoPackage, checks the CRS, the legend's class names and the feature
count, and renders photo + land cover + polygon outlines with QGIS's own legend to a PNG.

Figure: the QGIS rendering of the label GeoTIFF and polygons (docs/gis_qgis.jpg), shown in
docs/tutorials/gis.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IMAGE = "Tile 5/images/image_part_007.jpg"  # one of the bundled model's validation images


def prepare(folder: Path) -> None:
    import numpy as np
    import rasterio
    from affine import Affine
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    from aerialseg.config import data_root

    photo = np.asarray(Image.open(Path(data_root(None)) / IMAGE).convert("RGB"))
    folder.mkdir(parents=True, exist_ok=True)
    tif = folder / "dubai_ortho.tif"
    h, w = photo.shape[:2]
    with rasterio.open(
        tif,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=3,
        dtype="uint8",
        crs="EPSG:32640",
        transform=Affine(0.3, 0, 326_400, 0, -0.3, 2_787_900),
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(photo.transpose(2, 0, 1))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "aerialseg",
            "segment",
            str(tif),
            "--out",
            str(folder),
            "--vector",
            "--confidence",
            "--overwrite",
            "-q",
        ],
        check=True,
    )
    print(f"wrote {tif} and its outputs in {folder}")


def render(folder: Path, png: Path) -> None:
    from qgis.core import (
        QgsApplication,
        QgsFillSymbol,
        QgsLayoutExporter,
        QgsLayoutItemLegend,
        QgsLayoutItemMap,
        QgsLayoutPoint,
        QgsLayoutSize,
        QgsPrintLayout,
        QgsProject,
        QgsRasterLayer,
        QgsUnitTypes,
        QgsVectorLayer,
    )

    app = QgsApplication([], False)
    app.initQgis()
    ortho = QgsRasterLayer(str(folder / "dubai_ortho.tif"), "orthophoto")
    labels = QgsRasterLayer(str(folder / "dubai_ortho_labels.tif"), "land cover (aerialseg)")
    labels.loadDefaultStyle()  # dubai_ortho_labels.qml, as QGIS does when a user opens it
    polys = QgsVectorLayer(
        str(folder / "dubai_ortho_polygons.gpkg") + "|layername=polygons", "polygons", "ogr"
    )
    for layer in (ortho, labels, polys):
        assert layer.isValid(), layer.name()
    renderer = labels.renderer()
    names = [c.label for c in renderer.classes()] if hasattr(renderer, "classes") else []
    print(f"QGIS {app.applicationVersion() if hasattr(app, 'applicationVersion') else ''}")
    print(
        f"labels: {labels.crs().authid()}, {labels.width()} x {labels.height()}, renderer "
        f"{renderer.type()}, legend {names}"
    )
    print(
        f"polygons: {polys.crs().authid()}, {polys.featureCount()} features, fields "
        f"{[f.name() for f in polys.fields()]}"
    )
    assert labels.crs().authid() == ortho.crs().authid() == polys.crs().authid() == "EPSG:32640"
    assert renderer.type() == "paletted" and "Building" in names
    assert labels.extent() == ortho.extent()
    labels.renderer().setOpacity(0.55)
    polys.setRenderer(polys.renderer().clone())
    polys.renderer().setSymbol(
        QgsFillSymbol.createSimple(
            {"style": "no", "outline_color": "20,20,20", "outline_width": "0.15"}
        )
    )
    project = QgsProject.instance()
    for layer in (ortho, labels, polys):
        project.addMapLayer(layer)
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page = layout.pageCollection().page(0)
    page.setPageSize(QgsLayoutSize(250, 190, QgsUnitTypes.LayoutMillimeters))
    item = QgsLayoutItemMap(layout)
    item.attemptMove(QgsLayoutPoint(5, 5, QgsUnitTypes.LayoutMillimeters))
    item.attemptResize(QgsLayoutSize(180, 180, QgsUnitTypes.LayoutMillimeters))
    item.setLayers([polys, labels, ortho])
    item.setExtent(labels.extent())
    layout.addLayoutItem(item)
    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("QGIS legend")
    legend.setLinkedMap(item)
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()
    for layer in (ortho, polys):
        root.removeLayer(layer)
    legend.attemptMove(QgsLayoutPoint(188, 5, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(legend)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = 110
    result = QgsLayoutExporter(layout).exportToImage(str(png), settings)
    assert result == QgsLayoutExporter.Success, result
    print(f"rendered {png}")
    app.exitQgis()


if __name__ == "__main__":
    if sys.argv[1] == "--prepare":
        prepare(Path(sys.argv[2]))
    else:
        render(Path(sys.argv[1]), Path(sys.argv[2]))
