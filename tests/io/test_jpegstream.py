import io

import numpy as np
import pytest
from PIL import Image

from aerialseg.io import jpegstream
from aerialseg.io.jpegstream import JpegRows


def picture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.integers(0, 256, (h, w, 3)) // 40 * 40).astype(np.uint8)
    img[:, : w // 2] = np.linspace(0, 255, w // 2)[None, :, None].astype(np.uint8)
    return img


@pytest.mark.parametrize("rows", [16, 32])
def test_bands_join_into_the_jpeg_of_the_whole_picture(tmp_path, monkeypatch, rows):
    """Encoded band by band (bands of 16 and 32 rows: restart markers numbered across 8 and
    more MCU rows) and joined, the picture decodes to the very pixels of one encoding with a
    restart every MCU row; the odd last band and bands written in odd sizes included."""
    monkeypatch.setattr(jpegstream, "ROWS", rows)
    img = picture(203, 157)
    out = JpegRows(tmp_path / "a.jpg", 157, 203, quality=75)
    for y in range(0, 203, 25):
        out.write(img[y : y + 25])
    out.close()
    whole = io.BytesIO()
    Image.fromarray(img).save(whole, "JPEG", quality=75, subsampling=2, restart_marker_rows=1)
    with Image.open(tmp_path / "a.jpg") as a, Image.open(whole) as b:
        assert a.size == (157, 203)
        assert np.array_equal(np.asarray(a), np.asarray(b))
    smooth = np.asarray(Image.open(tmp_path / "a.jpg")).astype(int)[:, :70]  # the ramp half
    assert np.abs(smooth - img[:, :70]).mean() < 3


def test_rows_must_fit_and_all_be_written(tmp_path):
    out = JpegRows(tmp_path / "a.jpg", 20, 30)
    with pytest.raises(ValueError, match="a row"):
        out.write(np.zeros((5, 21, 3), np.uint8))
    with pytest.raises(ValueError, match="more rows"):
        out.write(np.zeros((31, 20, 3), np.uint8))
    out.pending = []
    out.write(np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="10 of 30 rows"):
        out.close()
    with pytest.raises(ValueError, match="65535"):
        JpegRows(tmp_path / "b.jpg", 70_000, 10)
