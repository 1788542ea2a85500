import numpy as np
import pytest

pytest.importorskip("rasterio")

from aerialseg.gis.areas import pixel_areas  # noqa: E402
from aerialseg.gis.rasters import RasterSource  # noqa: E402

from ..geo_helpers import scene, write_raster  # noqa: E402


def test_a_local_crs_in_metres_gives_planar_areas(tmp_path):
    photo, _ = scene(20, 20)
    path = write_raster(tmp_path / "odd.tif", photo, crs='LOCAL_CS["site grid"]')
    with RasterSource(path) as src:
        areas, how = pixel_areas(src)
    assert np.allclose(areas, 0.25) and how.startswith("planar")
