import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from aerialseg.classes import DUBAI  # noqa: E402
from aerialseg.errors import AerialSegError  # noqa: E402
from aerialseg.gis.outputs import (  # noqa: E402
    geo_output_paths,
    mmu_pixels,
    parse_mmu,
    write_label_geotiff,  # noqa: E402
)

from ..geo_helpers import write_raster  # noqa: E402


def test_label_geotiff_colour_table_and_qml_show_the_display_palette(tmp_path):
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


def test_the_minimum_mapping_unit_in_square_metres_or_pixels():
    assert parse_mmu("16px") == (16.0, "px") and parse_mmu(" 25 m2") == (25.0, "m2")
    assert parse_mmu("0") == (0.0, "m2")
    for bad in ("-1", "ten", "nan", "5ha"):
        with pytest.raises(AerialSegError, match=f"--mmu {bad}"):
            parse_mmu(bad)
    rows = np.array([0.25, 0.25, 0.5])  # m^2 per pixel by row: the middle row's is used
    assert mmu_pixels((25.0, "m2"), rows) == 100 and mmu_pixels((9.0, "px"), None) == 9
    with pytest.raises(AerialSegError, match="needs a CRS"):
        mmu_pixels((25.0, "m2"), None)


def test_geo_output_paths_name_each_asked_for_file(tmp_path):
    plain = geo_output_paths(tmp_path, "in")
    assert sorted(p.name for p in plain.values()) == [
        "in_labels.qml",
        "in_labels.tif",
        "in_labels.tif.aux.xml",
        "in_stats.csv",
        "in_stats.json",
    ]
    more = geo_output_paths(tmp_path, "in", True, True, "geojson", True)
    assert set(more) - set(plain) == {"confidence", "probs", "polygons", "zones_csv", "zones_gpkg"}
    assert more["polygons"].name == "in_polygons.geojson"
