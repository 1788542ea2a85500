"""Run by QGIS's own Python (``/usr/bin/python3 in_qgis.py MODE PLUGINS_DIR ...``), not by
pytest: the plugin's algorithms called the way QGIS calls them, in one process.

- ``batch PLUGINS OUT PHOTO MASK PHOTO2``: segment twice in one process, as batch mode does
  (the first run with NODATA and MASK, the second without: nothing may carry over).
- ``cancel PLUGINS OUT PHOTO``: segment with a feedback that is canceled from a thread once
  the child reports progress; prints what processAlgorithm raised.
- ``model PLUGINS MODEL3``: writes the Processing model of the tests (segment, then
  zonal_stats on the same photo) - how ``tests/qgis/data/segment_then_zones.model3`` was made.
Prints one JSON line."""

import json
import sys
import threading
import time

from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
)


def batch(alg_class, out, photo, mask, photo2):
    runs = [
        {"INPUT": photo, "MASK": mask, "NODATA": 0, "OUTPUT": f"{out}/first.tif"},
        {"INPUT": photo2, "OUTPUT": f"{out}/second.tif"},
    ]
    done = []
    for params in runs:
        alg = alg_class().create()  # as QGIS does for each run
        results, ok = alg.run(params, QgsProcessingContext(), QgsProcessingFeedback())
        done.append({"ok": ok, "results": results})
    return done


def cancel(alg_class, out, photo):
    alg = alg_class()
    alg.initAlgorithm()
    feedback = QgsProcessingFeedback()

    def press_cancel():  # once the child is segmenting, as a user would
        while feedback.progress() <= 0:
            time.sleep(0.05)
        feedback.cancel()

    threading.Thread(target=press_cancel, daemon=True).start()
    start = time.monotonic()
    try:
        alg.processAlgorithm({"INPUT": photo, "OUTPUT": f"{out}/map.tif",
                              "OUTPUT_VECTOR": f"{out}/map.gpkg"},
                             QgsProcessingContext(), feedback)  # fmt: skip
        raised = None
    except QgsProcessingException as e:
        raised = str(e)
    return {"raised": raised, "seconds": time.monotonic() - start}


def model(path):
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildDependency,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterRasterLayer,
    )

    m = QgsProcessingModelAlgorithm("segment_then_zones", "aerialseg tests")
    for param, name in ((QgsProcessingParameterRasterLayer, "photo"),
                        (QgsProcessingParameterFeatureSource, "zones")):  # fmt: skip
        m.addModelParameter(param(name, name), QgsProcessingModelParameter(name))
    photo = QgsProcessingModelChildParameterSource.fromModelParameter("photo")
    for cid, alg, extra, out in (
        ("segment", "aerialseg:segment", {}, "land_cover"),
        ("zones", "aerialseg:zonal_stats",
         {"ZONES": QgsProcessingModelChildParameterSource.fromModelParameter("zones")},
         "per_zone"),
    ):  # fmt: skip
        child = QgsProcessingModelChildAlgorithm(alg)
        child.setChildId(cid)
        child.addParameterSources("INPUT", [photo])
        for key, source in extra.items():
            child.addParameterSources(key, [source])
        output = QgsProcessingModelOutput(out)
        output.setChildOutputName("OUTPUT")
        output.setChildId(cid)
        child.setModelOutputs({out: output})
        if cid == "zones":
            child.setDependencies([QgsProcessingModelChildDependency("segment")])  # after the map
        m.addChildAlgorithm(child)
    m.updateDestinationParameters()
    return {"written": m.toFile(path)}


def main(mode, plugins, *args):
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, plugins)
    from aerialseg.segment import Segment  # the plugin package, as QGIS loads it

    if mode == "model":
        from aerialseg.provider import Provider

        QgsApplication.processingRegistry().addProvider(Provider())
        result = model(*args)
    else:
        result = {"batch": batch, "cancel": cancel}[mode](Segment, *args)
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
