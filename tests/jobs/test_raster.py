import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from aerialseg.errors import AerialSegError  # noqa: E402
from aerialseg.gis import areas  # noqa: E402
from aerialseg.gis.rasters import RasterSource  # noqa: E402
from aerialseg.inference.segmenter import load_segmenter  # noqa: E402
from aerialseg.inference.tiling import Tiling  # noqa: E402
from aerialseg.jobs.segment import SegmentOptions, segment_file  # noqa: E402

from ..geo_helpers import GEOGRAPHIC, geographic_transform, scene, write_raster  # noqa: E402


@pytest.fixture(scope="module")
def seg(tiny_model):
    return load_segmenter(tiny_model, "fp32", Tiling(window=64, overlap=0.25, batch_size=2))


@pytest.mark.parametrize("crs", ["utm", "geographic"])
def test_label_geotiff_has_the_inputs_grid_classes_nodata_and_areas(seg, tmp_path, crs):
    photo, _ = scene(80, 110, seed=2)
    data = np.concatenate([photo.astype(np.uint16) * 40, np.full((1, 80, 110), 9, np.uint16)])
    data[:, :, :20] = 0  # nodata border
    kw = {"crs": GEOGRAPHIC, "transform": geographic_transform()} if crs == "geographic" else {}
    path = write_raster(tmp_path / "in.tif", data, nodata=0, **kw)
    opts = SegmentOptions(confidence=True, save_probabilities=True)
    result = segment_file(seg, path, tmp_path / "out", opts)
    info, paths = result.stats, result.outputs
    assert info["crs"] == rasterio.open(path).crs.to_string()
    with rasterio.open(path) as src, rasterio.open(paths["labels"]) as lab:
        assert lab.crs == src.crs and lab.transform == src.transform
        assert (lab.width, lab.height) == (src.width, src.height)
        assert lab.dtypes[0] == "uint8" and lab.nodata == 255
        assert lab.profile["compress"] == "deflate" and lab.profile["tiled"]
        assert lab.overviews(1) == []  # too small to need any (see test_overviews)
        assert lab.colormap(1)[0][:3] == seg.classes.display[0][:3]  # shown, not read
        assert lab.tags(1)["CLASS_0"] == seg.classes.names[0]
        labels = lab.read(1)
    assert (labels[:, :20] == 255).all() and (labels[:, 20:] < 6).all()
    with RasterSource(path) as src:
        rgb, _ = src.read_all()
    expect = seg.segment(rgb)
    assert np.array_equal(labels[:, 20:], expect[:, 20:])
    with rasterio.open(paths["confidence"]) as c, rasterio.open(paths["probs"]) as p:
        assert c.crs == p.crs == rasterio.open(path).crs
        conf = c.read(1)
        assert (conf[:, :20] == 0).all() and (conf[:, 20:] >= 255 // 6).all()
        assert p.count == 6 and p.read_masks(1)[:, :20].max() == 0
        probs = p.read()
        assert np.abs(probs[:, :, 20:].sum(0).astype(int) - 255).max() <= 6  # rounding
    counts = np.bincount(labels[labels != 255], minlength=6)
    stats = json.loads(paths["stats_json"].read_text())
    assert [r["pixels"] for r in stats["classes"]] == counts.tolist()
    assert stats["nodata_pixels"] == 80 * 20
    area = sum(r["area_m2"] for r in stats["classes"])
    if crs == "utm":
        assert area == pytest.approx(80 * 90 * 0.25)
        assert stats["area_method"].startswith("planar")
    else:  # 5e-6 degrees at 25.2 N: about 0.553 m x 0.503 m
        from pyproj import Geod

        lon0, lat0 = 55.27 + 20 * 5e-6, 25.20
        g = Geod(ellps="WGS84")
        box = g.polygon_area_perimeter(
            [lon0, lon0 + 90 * 5e-6, lon0 + 90 * 5e-6, lon0],
            [lat0, lat0, lat0 - 80 * 5e-6, lat0 - 80 * 5e-6],
        )[0]
        assert area == pytest.approx(abs(box), rel=1e-4)
        assert stats["area_method"].startswith("geodesic")
    assert "Building" in paths["labels_qml"].read_text()
    assert "<Category>Building</Category>" in paths["labels_aux"].read_text()
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("cog", [False, True])
def test_overviews_and_cloud_optimised_geotiff(seg, tmp_path, cog):
    photo, _ = scene(40, 520)
    path = write_raster(tmp_path / "in.tif", photo)
    paths = segment_file(seg, path, tmp_path, SegmentOptions(cog=cog)).outputs
    with rasterio.open(paths["labels"]) as lab:
        assert lab.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" or not cog
        assert lab.overviews(1) == ([2] if cog else [2, 4])
        assert lab.colormap(1)[1][:3] == seg.classes.display[1][:3] and lab.nodata == 255


def test_a_failure_leaves_nothing_behind(seg, tmp_path, monkeypatch):
    photo, _ = scene(100, 100)
    path = write_raster(tmp_path / "in.tif", photo)
    out = tmp_path / "out"

    def broken(*a, **k):
        raise AerialSegError("disk full (simulated)")

    monkeypatch.setattr(areas, "confidence_of", broken)
    with pytest.raises(AerialSegError, match="simulated"):
        segment_file(seg, path, out, SegmentOptions(confidence=True))
    assert list(out.iterdir()) == []


def test_polygons_and_their_statistics_are_written_when_asked(seg, tmp_path):
    photo, _ = scene(64, 96, seed=3)
    path = write_raster(tmp_path / "in.tif", photo)
    opts = SegmentOptions(vector=True, vector_format="geojson", mmu="0", simplify=0)
    result = segment_file(seg, path, tmp_path / "out", opts)
    polygons = result.outputs["polygons"]
    assert polygons.name == "in_polygons.geojson" and polygons.stat().st_size > 0
    features = json.loads(polygons.read_text())["features"]
    assert len(features) == result.stats["polygons"]["polygons"] > 0
