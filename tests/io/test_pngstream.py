import numpy as np
import pytest
from PIL import Image

from aerialseg.io.pngstream import PngRows

from ..helpers import make_scene


@pytest.mark.parametrize("channels", [1, 3])
def test_rows_written_in_bands_read_back_as_the_image(tmp_path, channels):
    photo, labels = make_scene(70, 90, seed=2)
    image = labels if channels == 1 else photo
    png = PngRows(tmp_path / "a.png", 90, 70, channels)
    for y0, y1 in ((0, 1), (1, 33), (33, 70)):  # uneven bands, one of a single row
        png.write(image[y0:y1])
    png.close()
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == ("L" if channels == 1 else "RGB")
        assert np.array_equal(np.asarray(im), image)


def test_too_few_or_too_many_rows_are_refused(tmp_path):
    png = PngRows(tmp_path / "a.png", 4, 3, 1)
    png.write(np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match="2 of 3 rows"):
        png.close()
    with pytest.raises(ValueError, match="more rows"):
        png.write(np.zeros((2, 4), np.uint8))
    png.abort()
