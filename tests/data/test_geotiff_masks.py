import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from aerialseg.classes import DUBAI  # noqa: E402
from aerialseg.data.segmentation import load_dataset  # noqa: E402

from ..geo_helpers import scene, write_raster  # noqa: E402


def test_geotiff_images_with_index_or_colour_table_masks(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    photo, labels = scene(40, 50)
    labels = labels.copy()
    labels[0, :5] = 9  # a value that is no class
    labels[1, :3] = 0
    write_raster(root / "images" / "a.tif", photo)
    write_raster(root / "masks" / "a.tif", labels[None], nodata=200)  # class indices
    photo_b, labels_b = scene(40, 50, seed=5)
    write_raster(root / "images" / "b.tif", photo_b)
    path = write_raster(root / "masks" / "b.tif", labels_b[None])
    with rasterio.open(path, "r+") as dst:  # a colour table of the class colours
        dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(DUBAI.colors)})
    a, b = load_dataset(root, DUBAI)
    assert a.labels[0, :5].tolist() == [255] * 5 and a.unknown_pixels == 5
    assert np.array_equal(a.labels[1:], labels[1:])
    assert np.array_equal(b.labels, labels_b) and b.unknown_pixels == 0
    assert np.array_equal(a.image, photo.transpose(1, 2, 0))
