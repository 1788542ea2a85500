import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from aerialseg.errors import AerialSegError  # noqa: E402
from aerialseg.inference import georaster  # noqa: E402
from aerialseg.inference.geofiles import (  # noqa: E402
    GeoOptions,
    geo_output_paths,
    segment_raster_to_files,
)
from aerialseg.inference.segmenter import load_model, predict_bands  # noqa: E402
from aerialseg.inference.tiling import Tiling, count_windows  # noqa: E402
from aerialseg.io.rasters import RasterSource  # noqa: E402

from ..geo_helpers import GEOGRAPHIC, geographic_transform, scene, write_raster  # noqa: E402


@pytest.fixture(scope="module")
def seg(tiny_model):
    return load_model(tiny_model, "fp32", Tiling(window=64, overlap=0.25, batch_size=2))


def stream(seg, src, chunk=georaster.CHUNK, **kw):
    """The streamed probabilities and valid mask, assembled (small rasters only)."""
    probs = np.full((src.height, src.width, 6), np.nan, np.float32)
    valid = np.zeros((src.height, src.width), bool)
    seen = np.zeros((src.height, src.width), int)

    def sink(row, col, p, v):
        probs[row : row + len(p), col : col + p.shape[1]] = p
        valid[row : row + len(p), col : col + p.shape[1]] = v
        seen[row : row + len(p), col : col + p.shape[1]] += 1

    georaster.stream_raster(seg, src, [sink], chunk=chunk, **kw)
    assert (seen == 1).all()  # every pixel handed out exactly once
    return probs, valid


def test_streamed_probabilities_equal_the_in_memory_path(seg, tmp_path):
    photo, _ = scene(90, 140)
    with RasterSource(write_raster(tmp_path / "a.tif", photo)) as src:
        probs, valid = stream(seg, src)
        assert valid.all()
        assert np.array_equal(probs, seg.predict_proba(photo.transpose(1, 2, 0)))


def test_column_chunks_blend_like_the_global_plan(seg, tmp_path):
    photo, _ = scene(60, 400, seed=3)
    groups, plan = georaster.column_chunks(seg.tiling, 60, 400, chunk=120)
    assert len(groups) >= 3  # the test must cut the raster into several chunks
    with RasterSource(write_raster(tmp_path / "wide.tif", photo)) as src:
        probs, _ = stream(seg, src, chunk=120)
    ref = seg.predict_proba(photo.transpose(1, 2, 0))
    assert np.abs(probs - ref).max() < 1e-3
    assert (probs.argmax(-1) == ref.argmax(-1)).mean() > 0.999


def test_windows_without_data_are_skipped_and_stay_nodata(seg, tmp_path):
    photo, _ = scene(160, 160, seed=1)
    mask = np.zeros((160, 160), bool)
    mask[100:, 90:] = True  # data only in one corner
    path = write_raster(tmp_path / "corner.tif", photo, mask=mask)
    done = []
    with RasterSource(path) as src:
        probs, valid = stream(seg, src, on_window=done.append)
        assert np.array_equal(valid, mask)
        assert sum(done) == count_windows(160, 160, seg.tiling)  # skipped ones count as done
        rgb, _ = src.read_all()
    ref = seg.predict_proba(rgb)
    assert np.array_equal(probs[mask], ref[mask])  # same pixels, same values
    calls = []
    real = seg.model.forward

    def spy(x):
        calls.append(x.shape[0])
        return real(x)

    seg.model.forward = spy
    try:
        model_windows = list(predict_bands(seg.model, rgb, "fp32", seg.tiling))
        n_all = sum(calls)
        calls.clear()
        with RasterSource(path) as src:
            stream(seg, src)
        assert 0 < sum(calls) < n_all / 2  # most windows never reached the network
    finally:
        del seg.model.forward
    assert model_windows


@pytest.mark.parametrize("crs", ["utm", "geographic"])
def test_label_geotiff_has_the_inputs_grid_classes_nodata_and_areas(seg, tmp_path, crs):
    photo, _ = scene(80, 110, seed=2)
    data = np.concatenate([photo.astype(np.uint16) * 40, np.full((1, 80, 110), 9, np.uint16)])
    data[:, :, :20] = 0  # nodata border
    kw = {"crs": GEOGRAPHIC, "transform": geographic_transform()} if crs == "geographic" else {}
    path = write_raster(tmp_path / "in.tif", data, nodata=0, **kw)
    opts = GeoOptions(confidence=True, probabilities=True)
    paths = geo_output_paths(tmp_path / "out", "in", opts)
    info = segment_raster_to_files(seg, path, paths, opts)
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
    opts = GeoOptions(cog=cog)
    paths = geo_output_paths(tmp_path, "in", opts)
    segment_raster_to_files(seg, path, paths, opts)
    with rasterio.open(paths["labels"]) as lab:
        assert lab.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" or not cog
        assert lab.overviews(1) == ([2] if cog else [2, 4])
        assert lab.colormap(1)[1][:3] == seg.classes.display[1][:3] and lab.nodata == 255


def test_a_failure_leaves_nothing_behind(seg, tmp_path, monkeypatch):
    photo, _ = scene(100, 100)
    path = write_raster(tmp_path / "in.tif", photo)
    opts = GeoOptions(confidence=True)
    out = tmp_path / "out"
    paths = geo_output_paths(out, "in", opts)

    def broken(*a, **k):
        raise AerialSegError("disk full (simulated)")

    monkeypatch.setattr(georaster, "confidence_of", broken)
    with pytest.raises(AerialSegError, match="simulated"):
        segment_raster_to_files(seg, path, paths, opts)
    assert list(out.iterdir()) == []


def test_a_local_crs_in_metres_gives_planar_areas(tmp_path):
    photo, _ = scene(20, 20)
    path = write_raster(tmp_path / "odd.tif", photo, crs='LOCAL_CS["site grid"]')
    with RasterSource(path) as src:
        areas, how = georaster.pixel_areas(src)
    assert np.allclose(areas, 0.25) and how.startswith("planar")


def test_short_wide_rasters_are_still_cut_into_chunks():
    """Two window columns make a chunk that a short raster would plan as one seamless pass;
    chunks then take one more column, never the whole width (memory grows with a chunk)."""
    from aerialseg.inference.tiling import Tiling

    for h, w in ((10_000, 10_000), (1_000, 10_000), (500, 30_000)):
        groups, (_, cols, _, win_w, ramp) = georaster.column_chunks(Tiling(), h, w)
        assert len(groups) > 1, (h, w)
        assert groups[0][0] == 0 and groups[-1][1] == len(cols)
        widest = max(cols[i1 - 1] + win_w - cols[i0] for i0, i1 in groups)
        assert widest <= 8 * win_w, (h, w, widest)


def test_label_geotiff_colour_table_and_qml_show_the_display_palette(tmp_path):
    from aerialseg.classes import DUBAI
    from aerialseg.inference.geofiles import write_label_geotiff

    labels = np.array([[0, 1, 2], [3, 4, 5], [255, 4, 4]], dtype=np.uint8)
    like = rasterio.open(write_raster(tmp_path / "in.tif", np.zeros((3, 3, 3), np.uint8)))
    paths = write_label_geotiff(tmp_path, "x", labels, DUBAI, like)
    with rasterio.open(paths["labels_tif"]) as lab:
        table = lab.colormap(1)
        assert np.array_equal(lab.read(1), labels)
    for i in range(5):  # water blue, vegetation green ...: not the masks' colours
        assert table[i] == (*DUBAI.display[i][:3], 255), DUBAI.names[i]
    assert table[5] == (255, 255, 255, 255)  # Unlabeled: a TIFF palette has no alpha
    assert table[255][3] == 0  # no data: transparent
    qml = paths["labels_qml"].read_text()
    assert '<paletteEntry value="4" color="#1f78b4" alpha="255" label="Water"/>' in qml
    assert 'value="5" color="#000000" alpha="0" label="Unlabeled"' in qml  # transparent
