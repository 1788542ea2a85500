"""The plugin as Model Builder, batch mode and the Cancel button use it: a Processing model
(``data/segment_then_zones.model3``) run by ``qgis_process``; segment run twice in one QGIS
process; and a cancel in mid-run through QgsProcessingFeedback (``in_qgis.py``, in QGIS's own
Python). Skips where QGIS or the photos are absent."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ..geo_helpers import write_raster
from .qgis_helpers import (
    QGIS_PROCESS,
    QGIS_PYTHON,
    install_plugin,
    photo,
    qgis_env,
    qgis_process,
)

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")
if QGIS_PROCESS is None or not Path(QGIS_PYTHON).exists():
    pytest.skip("QGIS (qgis_process, python3-qgis) not installed", allow_module_level=True)

HERE = Path(__file__).resolve().parent
MODEL = HERE / "data" / "segment_then_zones.model3"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def plugins(home) -> Path:
    return install_plugin(home).parent


def in_qgis(home: Path, *args) -> dict:
    """``in_qgis.py ARGS`` in QGIS's Python; the JSON it printed."""
    cmd = [QGIS_PYTHON, HERE / "in_qgis.py", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=qgis_env(home), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def half_box(src: Path, path: Path) -> tuple[Path, object]:
    """The western half of ``src`` as a polygon layer at ``path``."""
    import shapely

    with rasterio.open(src) as r:
        left, bottom, right, top = r.bounds
        crs = r.crs.to_wkt()
    west = shapely.box(left, bottom, (left + right) / 2, top)
    pyogrio.raw.write(path, shapely.to_wkb([west]), field_data=[np.array(["w"], object)],
                      fields=["name"], driver="GPKG", crs=crs, geometry_type="Polygon")  # fmt: skip
    return path, west


def test_a_processing_model_chains_segment_then_zonal_stats(home, plugins, tmp_path):
    src = photo("neon-sjer-savanna-10cm.tif")
    zones, west = half_box(src, tmp_path / "zones.gpkg")
    out = {"segment:land_cover": tmp_path / "map.tif",
           "zones:per_zone": tmp_path / "zones out.gpkg"}  # fmt: skip
    got = qgis_process(home, MODEL, photo=src, zones=zones, **out)
    assert {k: Path(v) for k, v in got.items() if k in out} == out
    with rasterio.open(src) as a, rasterio.open(out["segment:land_cover"]) as b:
        assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)
    meta, _, _, values = pyogrio.raw.read(out["zones:per_zone"])
    row = dict(zip(meta["fields"], (v[0] for v in values)))
    total = sum(v for k, v in row.items() if k.endswith("_m2"))
    assert total == pytest.approx(west.area, rel=0.01)


def test_batch_runs_twice_in_one_process_and_nothing_carries_over(home, plugins, tmp_path):
    """The first run has a MASK and NODATA; the second, on another photo, has neither."""
    first, second = photo("neon-sjer-savanna-10cm.tif"), photo("zurich-lakeshore-50cm.tif")
    mask, _ = half_box(first, tmp_path / "mask.gpkg")
    runs = in_qgis(home, "batch", plugins, tmp_path, first, mask, second)
    assert [r["ok"] for r in runs] == [True, True], runs
    maps = []
    for src, run in zip((first, second), runs):
        with rasterio.open(src) as a, rasterio.open(run["results"]["OUTPUT"]) as b:
            assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)
            maps.append(b.read(1))
    w = maps[0].shape[1]
    assert (maps[0][:, w // 2 + 2 :] == 255).all()  # the first run's mask
    assert (maps[1] != 255).all()  # ... is not the second's
    assert not list(tmp_path.glob(".aerialseg-*"))


def test_cancel_in_mid_run_leaves_nothing(home, plugins, tmp_path):
    big = np.random.default_rng(0).integers(0, 255, (3, 1536, 1536), dtype=np.uint8)
    src = write_raster(tmp_path / "photo.tif", big)
    out = tmp_path / "out"
    out.mkdir()
    got = in_qgis(home, "cancel", plugins, out, src)
    assert got["raised"] and "canceled" in got["raised"], got
    assert got["seconds"] < 60
    assert os.listdir(out) == []
