"""Bad input to ``qgis_process run aerialseg:segment``: each gives one clear line in QGIS's
log (qgis_process's output), a failed run, and nothing half-written. The rasters are tiny
and made here; the model never loads for most of them, so each run takes seconds."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ..geo_helpers import geographic_transform, write_raster
from .qgis_helpers import QGIS_PROCESS, install_plugin, results, run_qgis

rasterio = pytest.importorskip("rasterio")
if QGIS_PROCESS is None:
    pytest.skip("QGIS (qgis_process) not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    install_plugin(home)
    return home


def bands(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, 64, 64), dtype=np.uint8)


def refused(home: Path, out: Path, **params) -> str:
    """Run segment into ``out``; the ERROR of its log (with its reason on the next line
    where QGIS puts it there), after checking it failed with one and left nothing."""
    before = set(out.parent.iterdir()) if out.parent.exists() else set()
    r = run_qgis(home, "aerialseg:segment", json_out=False, OUTPUT=out, **params)
    log = r.stdout + r.stderr
    assert r.returncode != 0, log[-3000:]
    assert not out.exists() and not Path(f"{out}.aux.xml").exists()
    if out.parent.exists():
        assert set(out.parent.iterdir()) == before, log[-3000:]  # no work folder left either
    lines = log.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("ERROR:")]
    assert len(errors) == 1, log[-3000:]
    detail = lines[errors[0] + 1 : errors[0] + 2]  # a failed parameter check says why below
    return " ".join([lines[errors[0]], *(d for d in detail if d.startswith("\t"))])


def test_one_band_says_which_bands_to_pick(home, tmp_path):
    src = write_raster(tmp_path / "grey.tif", bands(1))
    log = refused(home, tmp_path / "out" / "map.tif", INPUT=src)
    assert "has 1 band, not 3; pick them with BANDS (e.g. BANDS 1,1,1" in log


def test_five_bands_say_which_bands_to_pick_and_bands_maps_them(home, tmp_path):
    src = write_raster(tmp_path / "multispectral.tif", bands(5))
    log = refused(home, tmp_path / "out" / "map.tif", INPUT=src)
    assert "has 5 bands; say which are red, green and blue in BANDS (e.g. 3,2,1)" in log
    out = tmp_path / "out" / "map.tif"
    results(run_qgis(home, "aerialseg:segment", INPUT=src, BANDS="3,2,1", OUTPUT=out))
    assert out.is_file()


def test_a_vector_layer_is_not_a_raster(home, tmp_path):
    import pyogrio
    import shapely

    gpkg = tmp_path / "parcels.gpkg"
    box = shapely.to_wkb([shapely.box(0, 0, 1, 1)])
    pyogrio.raw.write(gpkg, box, field_data=[], fields=[], driver="GPKG", crs="EPSG:32640",
                      geometry_type="Polygon")  # fmt: skip
    log = refused(home, tmp_path / "out" / "map.tif", INPUT=gpkg)
    assert f"INPUT: {gpkg} is a vector layer; give a raster (the aerial photo)" in log


@pytest.fixture
def read_only(tmp_path):
    """A folder no one may write into (root: chattr +i, as root ignores the mode bits)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    root = os.geteuid() == 0
    cmd = ["chattr", "+i", str(folder)] if root else ["chmod", "555", str(folder)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip(f"cannot make a read-only folder here ({' '.join(cmd)} failed)")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)] if root else ["chmod", "755", str(folder)])


def test_a_read_only_output_folder(home, tmp_path, read_only):
    src = write_raster(tmp_path / "photo.tif", bands(3))
    log = refused(home, read_only / "map.tif", INPUT=src)
    assert f"{read_only}: cannot write there" in log


def test_a_model_file_that_is_not_one(home, tmp_path):
    src = write_raster(tmp_path / "photo.tif", bands(3))
    model = tmp_path / "model.safetensors"
    model.write_text("not a model")
    log = refused(home, tmp_path / "out" / "map.tif", INPUT=src, MODEL=model)
    assert f"{model}: not an aerialseg model" in log


def test_a_geographic_layer_is_mapped_on_its_own_grid_with_one_line_saying_so(home, tmp_path):
    """EPSG:4326 is neither refused nor reprojected: aerialseg maps the pixels as they are
    and measures areas geodesically; the log says so, and how to do better."""
    src = write_raster(tmp_path / "lonlat.tif", bands(3), crs="EPSG:4326",
                       transform=geographic_transform())  # fmt: skip
    out = tmp_path / "map.tif"
    r = run_qgis(home, "aerialseg:segment", INPUT=src, OUTPUT=out)
    results(r)
    said = "geographic CRS (EPSG:4326): mapped on its own grid, not reprojected"
    assert said in r.stdout + r.stderr
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)
