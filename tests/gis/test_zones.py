import csv

import numpy as np
import pytest

pytest.importorskip("rasterio")
shapely = pytest.importorskip("shapely")
pyogrio = pytest.importorskip("pyogrio")

from pyproj import Transformer  # noqa: E402

from aerialseg.classes import DUBAI  # noqa: E402
from aerialseg.errors import AerialSegError  # noqa: E402
from aerialseg.gis.rasters import RasterSource  # noqa: E402
from aerialseg.gis.zones import zone_statistics  # noqa: E402

from ..geo_helpers import write_raster  # noqa: E402

X0, Y0 = 500_000.0, 2_790_000.0  # the raster's top-left corner (UTM 40N), 0.5 m pixels


def pixel_box(c0, r0, c1, r1):
    return shapely.box(X0 + 0.5 * c0, Y0 - 0.5 * r1, X0 + 0.5 * c1, Y0 - 0.5 * r0)


def write_zones(path, boxes, names):
    """Zones given in pixel boxes, stored in EPSG:4326 (so they must be reprojected)."""
    tr = Transformer.from_crs("EPSG:32640", "EPSG:4326", always_xy=True)
    geoms = [
        shapely.transform(b, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))
        for b in boxes
    ]
    pyogrio.raw.write(
        path,
        shapely.to_wkb(geoms),
        field_data=[np.array(names, dtype=object)],
        fields=["name"],
        layer="parcels",
        driver="GPKG",
        crs="EPSG:4326",
        geometry_type="Polygon",
    )
    return path


def test_zone_areas_match_a_hand_computed_case(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[:, 30:] = 1
    labels[:5] = 255  # no data along the top
    raster = write_raster(tmp_path / "labels.tif", labels[None], nodata=255)
    zones = write_zones(
        tmp_path / "zones.gpkg",
        [pixel_box(20, 10, 40, 20), pixel_box(0, 0, 10, 10), pixel_box(500, 500, 510, 510)],
        ["across the boundary", "corner with no data", "far away"],
    )
    with RasterSource(raster, bands=(1, 1, 1)) as src:
        from aerialseg.gis.areas import pixel_areas

        row_area, _ = pixel_areas(src)
    info = zone_statistics(raster, zones, DUBAI, row_area, tmp_path / "z.csv", tmp_path / "z.gpkg")
    assert info == {"zones": 3, "zones_on_map": 2}
    rows = list(csv.DictReader((tmp_path / "z.csv").open()))
    a, b, c = rows
    assert a["name"] == "across the boundary"
    # 10 x 10 pixels of each class, 0.25 m^2 each
    assert float(a["Building_m2"]) == 25.0 and float(a["Land_m2"]) == 25.0
    assert float(a["Building_pct"]) == 50.0 and float(a["nodata_m2"]) == 0.0
    assert float(b["Building_m2"]) == 12.5 and float(b["nodata_m2"]) == 12.5
    assert float(b["Building_pct"]) == 100.0
    assert all(float(v) == 0 for k, v in c.items() if k.endswith("_m2"))
    meta, _, geometry, fields = pyogrio.raw.read(tmp_path / "z.gpkg")
    assert meta["crs"] == "EPSG:32640" and len(geometry) == 3
    assert fields[meta["fields"].tolist().index("Land_m2")][0] == 25.0


def test_zones_off_the_raster_are_refused(tmp_path):
    from aerialseg.gis.zones import check_zones

    raster = write_raster(tmp_path / "l.tif", np.zeros((3, 20, 20), np.uint8))
    zones = write_zones(tmp_path / "far.gpkg", [pixel_box(900, 900, 950, 950)], ["far"])
    with RasterSource(raster) as src, pytest.raises(AerialSegError, match="no zone overlaps"):
        check_zones(zones, src)
    (tmp_path / "bad.gpkg").write_text("not a geopackage")
    with RasterSource(raster) as src, pytest.raises(AerialSegError, match="cannot read"):
        check_zones(tmp_path / "bad.gpkg", src)
