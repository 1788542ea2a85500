"""The plugin inside real QGIS: ``qgis_process run aerialseg:...`` on real orthophotos
(``../shared/datasets/other-places/unlabelled``), headless. Skips where QGIS or the photos
are absent. The plugin is installed into a temporary HOME's QGIS profile, which is where
qgis_process looks for it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")

PHOTOS = Path(__file__).parents[2] / "../shared/datasets/other-places/unlabelled"
# Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which it then rejects
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
SRC = str(Path(__file__).resolve().parents[2] / "src")

if QGIS_PROCESS is None:
    pytest.skip("QGIS (qgis_process) not installed", allow_module_level=True)


def photo(name: str) -> Path:
    path = PHOTOS / name
    if not path.is_file():
        pytest.skip(f"{path} not found (real orthophotos)")
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A HOME whose default QGIS profile has the plugin installed and enabled."""
    home = tmp_path_factory.mktemp("home")
    r = subprocess.run(
        [sys.executable, "-m", "aerialseg", "qgis", "install", "--qgis-dir",
         home / ".local/share/QGIS/QGIS3"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return home


def qgis_process(home: Path, alg: str, **params) -> dict:
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("AERIALSEG_PYTHON", None)
    cmd = [QGIS_PROCESS, "--json", "run", alg, "--", *(f"{k}={v}" for k, v in params.items())]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout[r.stdout.index("{") :])["results"]


def test_the_provider_lists_its_algorithms(home):
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([QGIS_PROCESS, "list"], capture_output=True, text=True, env=env)
    for alg in ("aerialseg:segment", "aerialseg:finetune", "aerialseg:zonal_stats"):
        assert alg in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_segment_keeps_the_grid_and_writes_styled_labels_polygons_and_table(home, tmp_path):
    import numpy as np
    import shapely

    src = photo("zurich-lakeshore-50cm.tif")
    out = tmp_path / "land cover.tif"
    results = qgis_process(
        home,
        "aerialseg:segment",
        INPUT=src,
        OUTPUT=out,
        OUTPUT_VECTOR=tmp_path / "polygons.gpkg",
        OUTPUT_TABLE=tmp_path / "table.gpkg",
    )
    assert Path(results["OUTPUT"]) == out
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.width, b.height) == (a.crs, a.transform, a.width, a.height)
        assert b.colormap(1)[0][:3] != (0, 0, 0) or b.colormap(1)[1][:3] != (0, 0, 0)
        labels = b.read(1)
        pixel = abs(b.transform.determinant)
    names = ("Building", "Land", "Road", "Vegetation", "Water")
    qml = out.with_suffix(".qml").read_text()
    aux = Path(f"{out}.aux.xml").read_text()
    assert all(n in qml and n in aux for n in names)
    _, _, wkb, fields = pyogrio.raw.read(tmp_path / "polygons.gpkg", layer="polygons")
    area = shapely.area(shapely.from_wkb(wkb)).sum()
    mapped = (labels != 255).sum() * pixel
    assert area == pytest.approx(mapped, rel=0.01)
    assert 0 < len(wkb) < labels.size / 16  # at least one polygon, none under the 16 px MMU
    meta, _, _, table = pyogrio.raw.read(tmp_path / "table.gpkg")
    ha = table[list(meta["fields"]).index("area_ha")]
    assert np.sum(ha) == pytest.approx(mapped / 1e4, rel=1e-3)
    assert not list(tmp_path.glob(".aerialseg-*"))  # the work folder is gone


def test_zonal_stats_gives_each_zone_its_class_areas(home, tmp_path):
    import numpy as np
    import shapely

    src = photo("neon-sjer-savanna-10cm.tif")
    with rasterio.open(src) as r:
        left, bottom, right, top = r.bounds
        crs = r.crs.to_wkt()
    half = shapely.box(left, bottom, (left + right) / 2, top)  # the western half
    zones = tmp_path / "zones.gpkg"
    name = [np.array(["west"], object)]
    pyogrio.raw.write(zones, shapely.to_wkb([half]), field_data=name, fields=["name"],
                      driver="GPKG", crs=crs, geometry_type="Polygon")  # fmt: skip
    qgis_process(home, "aerialseg:zonal_stats", INPUT=src, ZONES=zones,
                 OUTPUT=tmp_path / "per zone.gpkg", NODATA=0)  # fmt: skip
    meta, _, _, values = pyogrio.raw.read(tmp_path / "per zone.gpkg")
    row = dict(zip(meta["fields"], (v[0] for v in values)))
    assert row["name"] == "west"
    total = sum(v for k, v in row.items() if k.endswith("_m2"))
    assert total == pytest.approx(half.area, rel=0.01)
    assert sum(v for k, v in row.items() if k.endswith("_pct")) == pytest.approx(100, abs=0.1)
