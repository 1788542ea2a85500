"""Makes docs/qgis_segment.png: QGIS with aerialseg's Segment dialog open over a styled result.

Rerun (needs QGIS >= 3.22, xvfb-run and imagemagick; no network, no licensed imagery):

    python docs/qgis_shot.py          # from the repository root, in aerialseg's environment

It paints a synthetic 768 x 512 "aerial photo" (tests/helpers.py: make_scene, EPSG:32633,
0.5 m pixels), installs the plugin into a temporary HOME, fine-tunes the bundled model on the
scene's own labels (``aerialseg:finetune``, 1 minute) and runs ``aerialseg:segment`` with it
through qgis_process (labels + polygons), then starts QGIS under Xvfb with this same file as
its ``--code`` startup script: that part (``in_qgis``) adds the layers, opens the dialog, grabs the
screen and quits. The image is quantised to 256 colours to stay small.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(globals().get("__file__", ".")).resolve().parent.parent  # no __file__ in QGIS
SIZE = (1600, 1000)


def main():
    import numpy as np
    import rasterio
    import rasterio.features
    from rasterio.transform import from_origin

    sys.path.insert(0, str(ROOT))
    from tests.helpers import make_scene

    work = Path(tempfile.mkdtemp(prefix="qgis_shot_"))
    photo, truth = make_scene(512, 768, seed=119)  # a seed with all five classes, no "unlabeled"
    profile = dict(
        driver="GTiff",
        width=768,
        height=512,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500000, 5000256, 0.5, 0.5),
    )
    with rasterio.open(work / "ortho.tif", "w", photometric="RGB", **profile) as dst:
        dst.write(np.moveaxis(photo, 2, 0))
    # The bundled model, taught on Dubai, calls most of these flat blocks Land: so the scene's
    # own labels, as polygons, fine-tune it first (aerialseg:finetune, 1 minute on a CPU).
    names = ["Building", "Land", "Road", "Vegetation", "Water"]
    features = [
        {"type": "Feature", "properties": {"class": names[int(v)]}, "geometry": g}
        for g, v in rasterio.features.shapes(truth, transform=profile["transform"])
        if v < len(names)
    ]
    (work / "truth.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": features,
                "crs": {"type": "name", "properties": {"name": "EPSG:32633"}},
            }
        )
    )

    env = {
        **os.environ,
        "HOME": str(work / "home"),
        "PYTHONPATH": str(ROOT / "src"),
        "QT_QPA_PLATFORM": "offscreen",
        "AERIALSEG_SHOT_DIR": str(work),
    }
    run = lambda *cmd, **kw: subprocess.run(cmd, env=env, check=True, **kw)  # noqa: E731
    run(sys.executable, "-m", "aerialseg", "qgis", "install")
    run(
        "/usr/bin/qgis_process.bin",
        "run",
        "aerialseg:finetune",
        "--",
        f"INPUT={work / 'ortho.tif'}",
        f"LABELS={work / 'truth.geojson'}",
        "CLASS_FIELD=class",
        "MINUTES=1",
        f"OUTPUT={work / 'synthetic.safetensors'}",
    )
    run(
        "/usr/bin/qgis_process.bin",
        "run",
        "aerialseg:segment",
        "--",
        f"INPUT={work / 'ortho.tif'}",
        f"MODEL={work / 'synthetic.safetensors'}",
        f"OUTPUT={work / 'landcover.tif'}",
        f"OUTPUT_VECTOR={work / 'landcover_polygons.gpkg'}",
    )

    del env["QT_QPA_PLATFORM"]  # a real (virtual) X screen this time
    run(
        "xvfb-run",
        "-a",
        "-s",
        f"-screen 0 {SIZE[0]}x{SIZE[1]}x24",
        "qgis",
        "--nologo",
        "--noversioncheck",
        "--code",
        str(ROOT / "docs" / "qgis_shot.py"),
        timeout=300,
    )
    out = ROOT / "docs" / "qgis_segment.png"
    run("convert", str(work / "screen.png"), "-colors", "256", "-strip", str(out))
    print(f"{out}: {out.stat().st_size // 1024} KB (work files in {work})")


def in_qgis():
    """QGIS's startup script: layers, zoom, the Segment dialog, a screenshot, quit."""
    import processing
    from qgis.core import QgsProject, QgsRasterLayer, QgsRectangle, QgsVectorLayer
    from qgis.PyQt.QtCore import QPoint, QTimer
    from qgis.PyQt.QtWidgets import QApplication, QDockWidget
    from qgis.utils import iface

    work = Path(os.environ["AERIALSEG_SHOT_DIR"])
    photo = QgsRasterLayer(str(work / "ortho.tif"), "ortho (synthetic)")
    labels = QgsRasterLayer(str(work / "landcover.tif"), "Land cover")
    labels.loadNamedStyle(str(work / "landcover.qml"))  # the paletted classes segment wrote
    polygons = QgsVectorLayer(
        f"{work / 'landcover_polygons.gpkg'}|layername=polygons", "Land-cover polygons"
    )  # its style is in the GeoPackage
    for layer in (photo, labels, polygons):
        QgsProject.instance().addMapLayer(layer)
    tree = QgsProject.instance().layerTreeRoot()
    tree.findLayer(photo.id()).setExpanded(False)
    tree.findLayer(polygons.id()).setExpanded(False)
    iface.setActiveLayer(labels)

    window = iface.mainWindow()
    window.findChild(QDockWidget, "Browser").hide()  # the Layers panel gets the whole side
    window.setGeometry(0, 0, *SIZE)  # no window manager under Xvfb: place it ourselves
    dialog_box = (SIZE[0] - 760, 170, 740, 680)  # x, y, width, height: over the canvas's right
    state = {}

    def open_dialog():
        # the scene on the canvas's left, its right edge under the dialog
        canvas = iface.mapCanvas()
        left = canvas.mapToGlobal(QPoint(0, 0)).x()
        free_w, h = dialog_box[0] - left - 20, canvas.height()
        data = labels.extent()
        per_px = max(data.width() / (free_w + 200), data.height() / (h - 40))  # 200 px under it
        x0 = data.xMinimum() - 10 * per_px
        yc = data.center().y()
        canvas.setExtent(
            QgsRectangle(x0, yc - h * per_px / 2, x0 + canvas.width() * per_px, yc + h * per_px / 2)
        )
        canvas.refresh()
        dialog = processing.createAlgorithmDialog("aerialseg:segment", {"INPUT": photo.id()})
        dialog.setGeometry(*dialog_box)
        dialog.show()
        QTimer.singleShot(2000, dialog.runButton().setFocus)  # no text field highlighted
        # its legend: the class colours (expanding it any earlier does not stick)
        iface.layerTreeView().expand(iface.layerTreeView().node2index(tree.findLayer(labels.id())))
        state["dialog"] = dialog

    def grab():
        QApplication.primaryScreen().grabWindow(0).save(str(work / "screen.png"))
        # QGIS asks whether to drop the "temporary" layers (their files are under /tmp), and
        # QApplication.exit() with the dialog open crashed once (signal 11): just stop
        os._exit(0)

    QTimer.singleShot(3000, open_dialog)
    QTimer.singleShot(9000, grab)


if os.environ.get("AERIALSEG_SHOT_DIR") and "qgis" in sys.modules:
    in_qgis()
elif __name__ == "__main__":
    main()
