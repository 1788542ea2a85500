import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from aerialseg.gis.rasters import RasterSource  # noqa: E402
from aerialseg.inference import georaster  # noqa: E402
from aerialseg.inference.segmenter import load_segmenter, predict_bands  # noqa: E402
from aerialseg.inference.tiling import Tiling, count_windows  # noqa: E402

from ..geo_helpers import scene, write_raster  # noqa: E402


@pytest.fixture(scope="module")
def seg(tiny_model):
    return load_segmenter(tiny_model, "fp32", Tiling(window=64, overlap=0.25, batch_size=2))


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


def test_bands_of_a_few_rows_hold_the_same_values(seg, tmp_path, monkeypatch):
    """Bands cut to ``band_rows`` (what the streamed path hands its sinks, to keep them small)
    are the whole bands' rows, value for value; and the seams between column chunks still
    blend as before when bands are cut finer than a window stride."""
    photo, _ = scene(90, 140, seed=2)
    rgb = photo.transpose(1, 2, 0)
    whole = list(predict_bands(seg.model, rgb, "fp32", seg.tiling))
    cut = list(predict_bands(seg.model, rgb, "fp32", seg.tiling, band_rows=7))
    assert max(len(p) for _, p in cut) == 7 < max(len(p) for _, p in whole)
    assert [y for y, _ in cut] == [0, *np.cumsum([len(p) for _, p in cut])[:-1]]  # in order
    assert np.array_equal(np.concatenate([p for _, p in cut]), seg.predict_proba(rgb))
    photo, _ = scene(60, 400, seed=3)
    with RasterSource(write_raster(tmp_path / "wide.tif", photo)) as src:
        before, _ = stream(seg, src, chunk=120)
        monkeypatch.setattr(georaster, "BAND_ROWS", 5)
        after, _ = stream(seg, src, chunk=120)
    assert np.array_equal(after, before)


def test_a_full_scratch_disk_is_one_line(seg, tmp_path, monkeypatch):
    """The seam between column chunks goes to a scratch file: a full disk there is one line."""
    import errno

    from aerialseg.errors import AerialSegError

    def full(*a):
        raise OSError(errno.ENOSPC, "No space left on device")

    photo, _ = scene(60, 400, seed=3)
    with RasterSource(write_raster(tmp_path / "wide.tif", photo)) as src:
        monkeypatch.setattr(georaster.os, "pwrite", full)
        with pytest.raises(AerialSegError, match="scratch file .*No space left") as e:
            stream(seg, src, chunk=120)
    assert "\n" not in str(e.value)


def test_freed_memory_is_handed_back_after_every_forward_pass(seg, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(georaster, "release_freed_memory", calls.append)
    photo, _ = scene(60, 140, seed=4)
    with RasterSource(write_raster(tmp_path / "a.tif", photo)) as src:
        stream(seg, src)
    assert calls[-1] == 0  # at the end, whatever the resident memory
    assert calls[:-1] and set(calls[:-1]) == {georaster.TRIM_ABOVE}  # after every pass
