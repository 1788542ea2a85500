import numpy as np
import pytest
from PIL import Image

from aerialseg.errors import AerialSegError
from aerialseg.io.images import open_image, read_image, save_image, to_rgb


def test_lenient_reading_converts_rgba_grey_and_16_bit(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").tolist() == [[[200, 0, 0]] * 5] * 4

    Image.fromarray(np.full((4, 5), 77, np.uint8)).save(tmp_path / "g.png")
    assert (read_image(tmp_path / "g.png") == 77).all()

    deep = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[..., 0].tolist() == [[0, 64], [128, 255]]


def test_exif_orientation_is_honoured(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :10] = 255  # left half white
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape == (20, 10, 3)
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # the white half is now on top


def test_tiff_reads(tmp_path):
    Image.fromarray(np.full((6, 7, 3), 9, np.uint8)).save(tmp_path / "t.tif")
    assert read_image(tmp_path / "t.tif").shape == (6, 7, 3)


def test_pixel_limit_gives_a_clear_error(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(AerialSegError, match="300x200 is over the 50,000-pixel limit"):
        read_image(tmp_path / "big.png", max_pixels=50_000)
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's process-wide limit is left as it was


def test_pixel_limit_above_pillows_own_is_honoured(tmp_path):
    """--max-pixels above Pillow's default bomb limit must let such an image through (Pillow's
    limit is lifted for the call only)."""
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 20_000  # Pillow alone would refuse 60 000 pixels as a bomb
    try:
        assert read_image(tmp_path / "big.png", max_pixels=100_000).shape == (200, 300, 3)
        assert Image.MAX_IMAGE_PIXELS == 20_000
    finally:
        Image.MAX_IMAGE_PIXELS = before


def test_not_an_image(tmp_path):
    (tmp_path / "x.jpg").write_text("hello")
    with pytest.raises(AerialSegError, match="x.jpg: cannot read image"):
        read_image(tmp_path / "x.jpg")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    save_image(tmp_path / "o.png", np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(TypeError):
        save_image(tmp_path / "bad.png", np.zeros((3, 3, 3), object))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_to_rgb_takes_pil_modes_and_both_band_layouts():
    a = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    assert to_rgb(a) is not a and np.array_equal(to_rgb(a), a)
    assert np.array_equal(to_rgb(a.transpose(2, 0, 1)), a)  # (bands, H, W) as rasterio reads
    assert np.array_equal(to_rgb(Image.fromarray(a).convert("RGBA")), a)
    assert np.array_equal(to_rgb(a[..., 0]), np.repeat(a[..., :1], 3, axis=2))
    assert np.array_equal(to_rgb(a, bands=(3, 2, 1)), a[..., ::-1])
    assert to_rgb(Image.fromarray(a).quantize(4)).shape == (4, 5, 3)


def test_to_rgb_scales_deep_values_from_percentiles_2_and_98():
    pytest.importorskip("rasterio")
    # 0..10200 in steps of 1: percentile 2 is 204 and 98 is 9996, so those become 0 and 255,
    # the midpoint 5100 becomes 127.5 -> 128, and what lies outside is clipped
    band = np.arange(101 * 101).reshape(101, 101)
    out = to_rgb(band.astype(np.uint16))
    for value, expected in [(0, 0), (204, 0), (5100, 128), (9996, 255), (10200, 255)]:
        assert out.reshape(-1, 3)[value].tolist() == [expected] * 3, value
    as_float = to_rgb(band.astype(np.float32) / 10200)  # float alike, to rounding
    assert np.abs(as_float.astype(int) - out).max() <= 1
    assert np.array_equal(to_rgb(band.astype(">u2")), out)  # big-endian as Pillow's I;16B
    assert to_rgb(np.full((3, 3), 7, np.uint16), stretch="none").max() == 7


def test_open_image_keeps_16_bit(tmp_path):
    Image.fromarray(np.array([[0, 4000]], np.uint16)).save(tmp_path / "d.png")
    assert np.asarray(open_image(tmp_path / "d.png")).max() == 4000
