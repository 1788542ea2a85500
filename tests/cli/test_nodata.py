"""``segment --nodata VALUE``: a border of one colour without a nodata flag is left out of
every output (labels, polygons, statistics), like GDAL's ``-srcnodata``."""

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")

from ..geo_helpers import scene, write_raster  # noqa: E402
from ..helpers import aerialseg_here as run_aerialseg  # noqa: E402  (main() in this process)


def test_nodata_masks_an_unflagged_border_out_of_every_output(tmp_path, tiny_model):
    photo, _ = scene(64, 96)
    photo[:, :20, :30] = 255  # a white corner, no nodata flag in the file
    photo[:2, 40, 50] = 255  # one pixel white in two bands only: data
    ortho = write_raster(tmp_path / "ortho.tif", photo)
    out = tmp_path / "out"
    flags = ("--model", tiny_model, "--window", "64", "--vector", "--mmu", "0", "-q")
    r = run_aerialseg("segment", ortho, "--out", out, "--nodata", "255", *flags)
    assert r.returncode == 0, r.stderr
    with rasterio.open(out / "ortho_labels.tif") as src:
        labels = src.read(1)
    corner = np.zeros(labels.shape, bool)
    corner[:20, :30] = True
    assert ((labels == 255) == corner).all()
    stats = json.loads((out / "ortho_stats.json").read_text())
    assert stats["nodata_pixels"] == corner.sum()
    assert sum(c["pixels"] for c in stats["classes"]) == labels.size - corner.sum()
    info = pyogrio.read_info(out / "ortho_polygons.gpkg", layer="polygons")
    import shapely

    _, _, wkb, _ = pyogrio.raw.read(out / "ortho_polygons.gpkg", layer="polygons")
    area = shapely.area(shapely.from_wkb(wkb)).sum()
    assert area == pytest.approx((labels.size - corner.sum()) * 0.25), info
    # without the flag the corner is mapped like any other pixel
    r = run_aerialseg("segment", ortho, "--out", tmp_path / "plain", *flags)
    with rasterio.open(tmp_path / "plain" / "ortho_labels.tif") as src:
        assert (src.read(1) != 255).all()


def test_nodata_on_a_plain_picture_is_one_line(tmp_path, tiny_model):
    from PIL import Image

    photo, _ = scene(64, 64)
    Image.fromarray(photo.transpose(1, 2, 0)).save(tmp_path / "plain.bmp")
    r = run_aerialseg("segment", tmp_path / "plain.bmp", "--model", tiny_model, "--nodata", "0",
                      "--out", tmp_path / "out", "-q")  # fmt: skip
    assert r.returncode == 1
    assert "plain.bmp: --nodata is for GIS rasters" in r.stderr
