"""What Open image… reads (GeoTIFFs: bands, 16-bit scaling, nodata, decimation) and what Save…
writes for them (a labels GeoTIFF that lands where the raster does)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aerialseg.app.sources import read_picture
from aerialseg.inference.segmenter import load_model
from aerialseg.jobs.save import save_result

from ..geo_helpers import UTM, scene, utm_transform, write_raster
from ..helpers import make_scene

rasterio = pytest.importorskip("rasterio")


def raster_16bit(path, h=96, w=128, border=8):
    """4 bands of 16-bit values (the 4th an extra near-infrared), nodata 0 around a border."""
    photo, _ = scene(h, w, seed=2)
    data = np.concatenate([photo, photo[:1]]).astype(np.uint16) * 40 + 300
    data[:, :, :border] = 0  # left columns
    return write_raster(path, data, nodata=0, overviews=True)


def test_a_16bit_multiband_geotiff_reads_like_segment_reads_it(tmp_path):
    from aerialseg.gis.rasters import RasterSource

    path = raster_16bit(tmp_path / "ortho.tif")
    rgb, valid, geo = read_picture(path)
    with RasterSource(path) as src:  # segment's reader: same bands, same percentile scaling
        want_rgb, want_valid = src.read_all()
    assert rgb.dtype == np.uint8 and np.array_equal(rgb, want_rgb)
    assert np.array_equal(valid, want_valid) and not valid[:, :8].any() and valid[:, 8:].all()
    assert geo.crs == rasterio.crs.CRS.from_user_input(UTM)
    assert geo.transform == utm_transform() and geo.factor == 1
    assert (geo.width, geo.height) == (128, 96) == geo.source_size


def test_a_large_raster_is_read_decimated_with_its_transform_scaled(tmp_path):
    path = raster_16bit(tmp_path / "ortho.tif", h=400, w=600)
    rgb, valid, geo = read_picture(path, max_pixels=150 * 100)
    assert rgb.shape == (100, 150, 3) and valid.shape == (100, 150)
    assert geo.factor == 4 and geo.source_size == (600, 400)
    assert (geo.width, geo.height) == (150, 100)
    # the picture covers exactly the raster's ground: same corners
    assert geo.transform @ (0, 0) == utm_transform() @ (0, 0)
    assert geo.transform @ (150, 100) == utm_transform() @ (600, 400)
    assert not valid[:, :2].any() and valid[:, 2:].all()  # the 8-px border is 2 px here


def test_plain_pictures_and_tiffs_without_georeference_have_none(tmp_path):
    photo, _ = make_scene(40, 60, seed=1)
    Image.fromarray(photo).save(tmp_path / "plain.png")
    Image.fromarray(photo).save(tmp_path / "plain.tif")
    for name in ("plain.png", "plain.tif"):
        rgb, valid, geo = read_picture(tmp_path / name)
        assert np.array_equal(rgb, photo) and valid is None and geo is None, name


def test_save_keeps_the_georeference_and_plain_saves_stay_pngs(tmp_path, tiny_model):
    path = raster_16bit(tmp_path / "ortho.tif", h=400, w=600)
    rgb, valid, geo = read_picture(path, max_pixels=150 * 100)
    seg = load_model(tiny_model)
    labels = seg.segment(rgb)
    labels[~valid] = 255
    out = tmp_path / "saved"
    paths = save_result(out, "ortho", rgb, labels, seg.classes, seg.name, geo=geo)
    with rasterio.open(paths["labels_tif"]) as ds:
        assert ds.crs == rasterio.crs.CRS.from_user_input(UTM)
        assert ds.transform == geo.transform and (ds.width, ds.height) == (150, 100)
        assert ds.bounds == rasterio.open(path).bounds  # lands where the raster does
        assert ds.nodata == 255 and np.array_equal(ds.read(1), labels)
        assert ds.colormap(1)[0][:3] == tuple(seg.classes.display[0][:3])  # as shown
    assert paths["labels_qml"].is_file() and paths["labels_aux"].is_file()
    assert paths["labels"].suffix == ".png" and paths["figure"].is_file()  # PNGs as before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())

    plain = save_result(tmp_path / "plain", "x", rgb, labels, seg.classes, seg.name)
    assert not any(p.suffix == ".tif" for p in plain.values())
    assert all(p.is_file() for p in plain.values())
