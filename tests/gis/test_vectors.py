import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
shapely = pytest.importorskip("shapely")
pyogrio = pytest.importorskip("pyogrio")

from rasterio.features import shapes  # noqa: E402

from aerialseg.classes import DUBAI  # noqa: E402
from aerialseg.gis.vectors import polygonize_to_file  # noqa: E402

from ..geo_helpers import GEOGRAPHIC, geographic_transform, write_raster  # noqa: E402
from ..helpers import make_scene  # noqa: E402


def label_raster(tmp_path, crs="EPSG:32640", transform=None, seed=4):
    _, labels = make_scene(160, 120, seed)
    labels = labels.copy()
    yy, xx = np.mgrid[:160, :120]
    labels[(yy - 70) ** 2 + (xx - 60) ** 2 < 35**2] = 3  # a round field: a pixel staircase
    labels[:, :9] = 255  # nodata border
    return write_raster(
        tmp_path / "labels.tif", labels[None], crs=crs, transform=transform, nodata=255
    ), labels


def test_polygons_cut_by_chunks_are_merged_and_areas_match_pixel_counts(tmp_path):
    path, labels = label_raster(tmp_path)
    info = polygonize_to_file(path, tmp_path / "p.gpkg", DUBAI, "gpkg", 0, 1.0, rows=16)
    meta, _, geometry, fields = pyogrio.raw.read(tmp_path / "p.gpkg", layer="polygons")
    assert meta["crs"] == "EPSG:32640" and meta["geometry_type"] == "Polygon"
    names, index, area = fields[0], fields[1], fields[2]
    geoms = shapely.from_wkb(geometry)
    assert shapely.is_valid(geoms).all()
    # the same polygons as one polygonisation of the whole raster: every cut piece merged
    whole = [v for _, v in shapes(labels, connectivity=4) if v != 255]
    assert len(geoms) == len(whole) == info["polygons"]
    counts = np.bincount(labels[labels != 255], minlength=6)
    for c in range(6):
        got = area[index == c].sum()
        assert got == pytest.approx(counts[c] * 0.25, rel=0.01), DUBAI.names[c]
        assert np.allclose(shapely.area(geoms[index == c]), area[index == c], rtol=1e-6)
        assert set(names[index == c]) <= {DUBAI.names[c]}
    # a coverage: no overlaps (areas add up to the union's)
    assert shapely.union_all(geoms).area == pytest.approx(shapely.area(geoms).sum(), rel=1e-9)
    # simplified: far fewer vertices than the pixel staircase
    stairs = sum(len(g["coordinates"][0]) for g, v in shapes(labels, connectivity=4))
    n = shapely.get_num_coordinates(geoms).sum()
    assert n < 0.6 * stairs
    polygonize_to_file(path, tmp_path / "one.gpkg", DUBAI, "gpkg", 0, 1.0)  # one chunk
    one = shapely.from_wkb(pyogrio.raw.read(tmp_path / "one.gpkg", layer="polygons")[2])
    assert n <= 1.05 * shapely.get_num_coordinates(one).sum()  # cut lines leave ~no trace


def test_minimum_mapping_unit_removes_small_patches(tmp_path):
    path, labels = label_raster(tmp_path)
    labels_noisy = labels.copy()
    labels_noisy[20:22, 30:32] = 4  # 4-pixel specks
    labels_noisy[100:101, 60:63] = 0
    path = write_raster(tmp_path / "noisy.tif", labels_noisy[None], crs="EPSG:32640", nodata=255)
    polygonize_to_file(path, tmp_path / "p.gpkg", DUBAI, "gpkg", 12, 1.0, rows=32)
    _, _, geometry, fields = pyogrio.raw.read(tmp_path / "p.gpkg", layer="polygons")
    assert fields[2].min() >= 0.8 * 12 * 0.25  # m^2: nothing under ~12 pixels left
    polygonize_to_file(path, tmp_path / "q.gpkg", DUBAI, "gpkg", 0, 1.0, rows=32)
    _, _, _, fields0 = pyogrio.raw.read(tmp_path / "q.gpkg", layer="polygons")
    assert fields0[2].min() < 2  # without an MMU the specks are there


def test_geojson_is_in_wgs84_counter_clockwise_with_geodesic_areas(tmp_path):
    path, labels = label_raster(tmp_path, crs=GEOGRAPHIC, transform=geographic_transform())
    polygonize_to_file(path, tmp_path / "p.geojson", DUBAI, "geojson", 0, 1.0, rows=40)
    doc = json.loads((tmp_path / "p.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in doc["features"]])
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    assert 55.27 <= minx < maxx <= 55.27 + 120 * 5e-6 + 1e-9
    assert 25.20 - 160 * 5e-6 - 1e-9 <= miny < maxy <= 25.20
    assert shapely.is_ccw(shapely.get_exterior_ring(geoms)).all()  # RFC 7946 winding
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    area = np.array([f["properties"]["area_m2"] for f in doc["features"]])
    assert np.allclose(area, [abs(geod.geometry_area_perimeter(g)[0]) for g in geoms], rtol=1e-4)
    counts = np.bincount(labels[labels != 255], minlength=6)
    pixel = abs(
        geod.polygon_area_perimeter([0, 5e-6, 5e-6, 0], [25.2, 25.2, 25.2 - 5e-6, 25.2 - 5e-6])[0]
    )
    assert area.sum() == pytest.approx(counts.sum() * pixel, rel=0.01)


def test_utm_geojson_is_reprojected_to_wgs84(tmp_path):
    path, _ = label_raster(tmp_path)
    polygonize_to_file(path, tmp_path / "p.geojson", DUBAI, "geojson", 0, 1.0)
    doc = json.loads((tmp_path / "p.geojson").read_text())
    lon, lat = doc["features"][0]["geometry"]["coordinates"][0][0]
    assert 56.9 < lon < 57.1 and 25.2 < lat < 25.3  # UTM 40N (500 km E, 2790 km N)


def test_the_geopackage_carries_its_qgis_style_by_class(tmp_path):
    import sqlite3

    from aerialseg.gis.vector_labels import VectorOptions, check_layer

    path, _ = label_raster(tmp_path)
    gpkg = tmp_path / "p.gpkg"
    polygonize_to_file(path, gpkg, DUBAI, "gpkg")
    polygonize_to_file(path, gpkg, DUBAI, "gpkg")  # again over it: still one style
    with sqlite3.connect(gpkg) as db:
        rows = db.execute(
            "SELECT f_table_name, f_geometry_column, styleQML, useAsDefault FROM layer_styles"
        ).fetchall()
        geom = db.execute("SELECT column_name FROM gpkg_geometry_columns").fetchone()[0]
    assert len(rows) == 1
    table, column, qml, default = rows[0]
    assert (table, column, default) == ("polygons", geom, 1)
    assert '<renderer-v2 type="categorizedSymbol" attr="class"' in qml
    assert 'value="Water"' in qml and 'value="31,120,180,255"' in qml  # display blue
    assert 'value="0,0,0,0"' in qml  # Unlabeled: transparent
    assert [str(n) for n in pyogrio.list_layers(gpkg)[:, 0]] == ["polygons", "layer_styles"]
    # read back as labels without --layer: the style table is no layer of shapes
    assert check_layer(gpkg, VectorOptions("class"))[0] == "polygons"
