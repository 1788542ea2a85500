import numpy as np
import pytest

pytest.importorskip("rasterio")

from rasterio.enums import ColorInterp  # noqa: E402

from aerialseg.errors import AerialSegError  # noqa: E402
from aerialseg.gis.rasters import RasterSource, is_georeferenced  # noqa: E402
from aerialseg.gis.stretch import Scale, parse_bands  # noqa: E402

from ..geo_helpers import GEOGRAPHIC, geographic_transform, scene, write_raster  # noqa: E402


def test_8bit_rgb_reads_as_it_is_with_crs_and_transform(tmp_path):
    photo, _ = scene(70, 90)
    path = write_raster(tmp_path / "a.tif", photo)
    assert is_georeferenced(path)
    with RasterSource(path) as src:
        assert src.bands == (1, 2, 3) and src.ranges is None
        rgb, valid = src.read_all()
        assert np.array_equal(rgb, photo.transpose(1, 2, 0)) and valid.all()
        part, _ = src.read(10, 20, 30, 40)
        assert np.array_equal(part, rgb[10:40, 20:60])


def test_plain_pictures_are_not_georeferenced(tmp_path):
    from PIL import Image

    photo, _ = scene(20, 20)
    Image.fromarray(photo.transpose(1, 2, 0)).save(tmp_path / "p.png")
    write_raster(tmp_path / "plain.tif", photo, crs=None, transform=None)
    assert not is_georeferenced(tmp_path / "p.png")
    (tmp_path / "p.pgw").write_text("0.5\n0\n0\n-0.5\n500000\n2790000\n")  # a world file
    assert is_georeferenced(tmp_path / "p.png")


def test_16bit_4band_colour_interpretation_percentiles_and_nodata(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(1000, 3000, (4, 80, 100)).astype(np.uint16)  # NIR, B, G, R
    data[:, :, :10] = 0  # a nodata border
    ci = [ColorInterp.undefined, ColorInterp.blue, ColorInterp.green, ColorInterp.red]
    path = write_raster(
        tmp_path / "ms.tif",
        data,
        nodata=0,
        colorinterp=ci,
        crs=GEOGRAPHIC,
        transform=geographic_transform(),
    )
    with RasterSource(path) as src:
        assert src.bands == (4, 3, 2)  # red, green, blue by colour interpretation
        lo, hi = src.ranges[0]
        valid_red = data[3][:, 10:]
        assert lo == pytest.approx(np.percentile(valid_red, 2), rel=0.02)  # nodata left out
        assert hi == pytest.approx(np.percentile(valid_red, 98), rel=0.02)
        rgb, valid = src.read_all()
        assert not valid[:, :10].any() and valid[:, 10:].all()
        assert rgb[:, :10].max() == 0
        expect = np.clip((data[3].astype(np.float32) - lo) * 255 / (hi - lo), 0, 255)
        assert np.abs(rgb[:, 10:, 0].astype(int) - np.rint(expect[:, 10:])).max() <= 1
    with RasterSource(path, bands=(2, 3, 4), scale=Scale.parse("0,4000")) as src:
        rgb, _ = src.read_all()
        assert rgb[5, 50, 2] == round(int(data[3, 5, 50]) * 255 / 4000)


def test_percentiles_come_from_an_overview_when_there_is_one(tmp_path, monkeypatch):
    data = np.random.default_rng(1).integers(0, 60000, (3, 256, 256)).astype(np.uint16)
    path = write_raster(tmp_path / "ov.tif", data, overviews=True)
    reads = []
    real = RasterSource._read_raw

    def spy(self, window, **kw):
        reads.append(kw.get("out_shape"))
        return real(self, window, **kw)

    monkeypatch.setattr(RasterSource, "_read_raw", spy)
    with RasterSource(path, scale=Scale.parse("p1,p99")):
        pass
    assert reads and all(r is not None for r in reads)  # decimated reads only


def test_alpha_band_and_internal_mask_are_nodata(tmp_path):
    photo, _ = scene(40, 50)
    alpha = np.full((1, 40, 50), 255, np.uint8)
    alpha[0, 30:] = 0
    ci = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    path = write_raster(tmp_path / "alpha.tif", np.concatenate([photo, alpha]), colorinterp=ci)
    with RasterSource(path) as src:
        _, valid = src.read_all()
        assert valid[:30].all() and not valid[30:].any()
    mask = np.ones((40, 50), bool)
    mask[:, :7] = False
    path = write_raster(tmp_path / "masked.tif", photo, mask=mask)
    with RasterSource(path) as src:
        _, valid = src.read_all()
        assert np.array_equal(valid, mask)


def test_bad_rasters_and_band_choices_are_one_clear_line(tmp_path):
    grey = write_raster(tmp_path / "grey.tif", np.zeros((1, 20, 20), np.uint8))
    with pytest.raises(AerialSegError, match="has 1 band, not 3; pick them with --bands"):
        RasterSource(grey)
    with RasterSource(grey, bands=parse_bands("1")) as src:
        assert src.read_all()[0].shape == (20, 20, 3)
    with pytest.raises(AerialSegError, match="band 4 is out of range"):
        RasterSource(
            write_raster(tmp_path / "rgb.tif", np.zeros((3, 20, 20), np.uint8)), bands=(4, 3, 2)
        )
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00" + b"\x00" * 50)
    with pytest.raises(AerialSegError, match="broken.tif: cannot read raster"):
        RasterSource(broken)


def test_a_decimated_read_in_tiles_is_the_read_in_one_piece(tmp_path, monkeypatch):
    """read_decimated reads a big raster tile by tile (each block decoded once): the tiles,
    fractional source windows at a factor that is no integer, give the one-piece picture."""
    import aerialseg.gis.rasters as rasters

    photo, _ = scene(300, 420, seed=4)
    mask = np.ones((300, 420), bool)
    mask[:, :30] = False
    path = write_raster(tmp_path / "big.tif", photo, mask=mask)
    with RasterSource(path) as src:
        monkeypatch.setattr(rasters, "DECIMATE_TILE", 64)
        tiled, tiled_valid, t1 = src.read_decimated(100 * 140)
        monkeypatch.setattr(rasters, "DECIMATE_TILE", 10**6)
        whole, whole_valid, t2 = src.read_decimated(100 * 140)
    assert tiled.shape == (100, 140, 3) and t1 == t2
    assert np.abs(tiled.astype(int) - whole).max() <= 1  # rounding of the averages only
    assert np.array_equal(tiled_valid, whole_valid) and not tiled_valid[:, :10].any()


def test_resample_shows_the_raster_on_a_coarser_or_finer_grid_over_the_same_ground(tmp_path):
    photo, _ = scene(64, 96)
    path = write_raster(tmp_path / "a.tif", photo)  # 0.5 m pixels
    with RasterSource(path) as full, RasterSource(path, resample=0.5) as half:
        assert (half.height, half.width) == (32, 48)
        assert half.transform.a == 2 * full.transform.a and half.src.bounds == full.src.bounds
        rgb, valid = half.read_all()
        assert valid.all()
        # shrinking averages the pixels each coarse pixel covers (no aliasing)
        mean = photo.transpose(1, 2, 0).reshape(32, 2, 48, 2, 3).mean((1, 3))
        assert np.abs(rgb.astype(float) - mean).max() <= 1
    with RasterSource(path, resample=2.0) as double:
        assert (double.height, double.width) == (128, 192)
        assert double.transform.a == 0.25


def test_resampling_needs_a_crs(tmp_path):
    photo, _ = scene(40, 40)
    path = write_raster(tmp_path / "nocrs.tif", photo, crs=None)
    with pytest.raises(AerialSegError, match="nocrs.tif: --input-gsd resamples"):
        RasterSource(path, resample=0.5)
