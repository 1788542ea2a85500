import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from aerialseg.gis.rasters import RasterSource  # noqa: E402
from aerialseg.inference import georaster  # noqa: E402
from aerialseg.inference.segmenter import load_model, predict_bands  # noqa: E402
from aerialseg.inference.tiling import Tiling, count_windows  # noqa: E402

from ..geo_helpers import scene, write_raster  # noqa: E402


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
