import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from aerialseg.errors import AerialSegError
from aerialseg.inference.segmenter import load_model, load_segmenter
from aerialseg.inference.tiling import Tiling
from aerialseg.jobs.segment import SegmentOptions, SegmentResult, segment_file

from ..helpers import make_scene


@pytest.fixture(scope="module")
def seg(tiny_model):
    return load_segmenter(tiny_model, "fp32", Tiling(window=64, overlap=0.25, batch_size=2))


def picture(tmp_path, name="photo.png", h=48, w=64):
    rgb, _ = make_scene(h, w, seed=4)
    Image.fromarray(rgb).save(tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    "kw, wrong",
    [
        ({"opacity": 1.5}, "--opacity"),
        ({"gsd": 0}, "--gsd"),
        ({"input_gsd": "half"}, "--input-gsd"),
        ({"input_gsd": -1.0}, "--input-gsd"),
        ({"bands": "3,2"}, "--bands 3,2"),
        ({"stretch": "p98,p2"}, "--stretch p98,p2"),
        ({"vector_format": "shp"}, "--vector-format"),
        ({"mmu": "ten"}, "--mmu ten"),
        ({"simplify": -1.0}, "--simplify"),
        ({"zones": "no-such.gpkg"}, "--zones no-such.gpkg: no such file"),
        ({"max_pixels": 0}, "--max-pixels"),
    ],
)
def test_a_bad_option_is_one_line_naming_it_when_the_options_are_made(kw, wrong):
    with pytest.raises(AerialSegError, match=wrong):
        SegmentOptions(**kw)


def test_options_travel_as_plain_values_and_come_back_the_same():
    opts = SegmentOptions(bands=(3, 2, 1), stretch="0,3000", vector=True, input_gsd="auto")
    plain = json.loads(json.dumps(dataclasses.asdict(opts)))  # as a worker receives them
    assert SegmentOptions(**plain) == opts
    assert SegmentOptions(bands="3,2,1").bands == (3, 2, 1) == opts.bands


def test_a_picture_gives_its_files_statistics_and_progress(seg, tmp_path):
    path = picture(tmp_path)
    seen = []
    result = segment_file(seg, path, tmp_path / "out", progress=lambda n, t: seen.append((n, t)))
    assert isinstance(result, SegmentResult) and not result.skipped and result.notes == []
    assert sorted(result.outputs) == sorted(
        ["labels", "mask", "overlay", "figure", "stats_json", "stats_csv"]
    )
    assert all(p.is_file() and p.name.startswith("photo_") for p in result.outputs.values())
    assert result.stats == json.loads(result.outputs["stats_json"].read_text())
    total = seen[0][1]
    assert total == seg.count_windows(48, 64) and sum(n for n, _ in seen) == total
    labels = np.array(Image.open(result.outputs["labels"]))
    assert np.array_equal(labels, seg.segment(np.array(Image.open(path))))


def test_a_second_run_keeps_the_complete_outputs_and_overwrite_redoes_them(seg, tmp_path):
    path = picture(tmp_path)
    first = segment_file(seg, path, tmp_path / "out", name="again")
    kept = segment_file(seg, path, tmp_path / "out", name="again")
    assert kept.skipped and kept.warning is None and kept.stats == first.stats
    assert kept.outputs == first.outputs
    redone = segment_file(seg, path, tmp_path / "out", SegmentOptions(overwrite=True), name="again")
    assert not redone.skipped


def test_options_for_georeferenced_rasters_on_a_plain_picture_are_a_note(seg, tmp_path):
    path = picture(tmp_path, "photo.webp")  # no GDAL read for it, whatever is asked
    opts = SegmentOptions(vector=True, confidence=True, bands="1,2,3")
    result = segment_file(seg, path, tmp_path / "out", opts)
    (note,) = result.notes
    assert note.startswith(f"{path}: --bands, --confidence, --vector left out")
    assert "polygons" not in result.outputs and "confidence" not in result.outputs


def test_nodata_on_a_plain_picture_is_refused(seg, tmp_path):
    path = picture(tmp_path, "photo.webp")
    with pytest.raises(AerialSegError, match="photo.webp: --nodata is for GIS rasters"):
        segment_file(seg, path, tmp_path / "out", SegmentOptions(nodata=0))


def test_gsd_gives_areas_on_a_picture_and_is_a_note_where_a_crs_gives_them(seg, tmp_path):
    pytest.importorskip("rasterio")
    from ..geo_helpers import scene, write_raster

    plain = segment_file(seg, picture(tmp_path), tmp_path / "a", SegmentOptions(gsd=0.5))
    rows = plain.stats["classes"]
    assert sum(r["area_m2"] for r in rows) == pytest.approx(48 * 64 * 0.25)
    photo, _ = scene(64, 64)
    raster = write_raster(tmp_path / "ortho.tif", photo)  # UTM, 0.5 m pixels
    geo = segment_file(seg, raster, tmp_path / "b", SegmentOptions(gsd=2.0))
    assert geo.notes == [f"{raster}: --gsd left out: the raster's CRS gives its areas"]
    assert geo.stats["area_method"].startswith("planar")
    assert sum(r["area_m2"] for r in geo.stats["classes"]) == pytest.approx(64 * 64 * 0.25)


def test_options_must_be_segment_options(seg, tmp_path):
    with pytest.raises(AerialSegError, match="options must be SegmentOptions, not dict"):
        segment_file(seg, picture(tmp_path), tmp_path / "out", {"tta": True})


def test_load_model_is_the_earlier_name_of_load_segmenter():
    import aerialseg

    assert load_model is load_segmenter
    assert aerialseg.load_segmenter is load_segmenter and aerialseg.segment_file is segment_file
