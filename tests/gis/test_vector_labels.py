"""Labels from vector files: shapes drawn in one CRS land on the right pixels of images in
another; every bad input is one line naming the file and the problem."""

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
shapely = pytest.importorskip("shapely")
pyogrio = pytest.importorskip("pyogrio")
pyproj = pytest.importorskip("pyproj")

from affine import Affine  # noqa: E402
from PIL import Image  # noqa: E402

from aerialseg.classes import DUBAI, IGNORE_INDEX  # noqa: E402
from aerialseg.errors import AerialSegError  # noqa: E402
from aerialseg.gis.vector_labels import (  # noqa: E402
    VectorOptions,
    rasterize_labels,
    vector_samples,
)

from ..geo_helpers import scene, write_raster  # noqa: E402

UTM33 = "EPSG:32633"  # around 15 E, 45 N
X0, Y0 = 500_000.0, 5_000_000.0  # the UTM image's top-left corner, 1 m pixels
LON0, LAT0, STEP = 15.0, 45.0, 1e-5  # the geographic image's top-left corner and pixel size


def utm_image(folder, name="utm.tif", x0=X0, y0=Y0, size=64):
    folder.mkdir(parents=True, exist_ok=True)
    photo, _ = scene(size, size)
    return write_raster(folder / name, photo, crs=UTM33, transform=Affine(1.0, 0, x0, 0, -1.0, y0))


def lonlat_image(folder, name="lonlat.tif"):
    folder.mkdir(parents=True, exist_ok=True)
    photo, _ = scene(64, 64)
    transform = Affine(STEP, 0, LON0, 0, -STEP, LAT0)
    return write_raster(folder / name, photo, crs="EPSG:4326", transform=transform)


def reproject(geoms, src, dst):
    t = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    return [
        shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
        for g in geoms
    ]


def utm_box(row0, col0, row1, col1):
    """The UTM image's pixels rows row0..row1-1, columns col0..col1-1, as a polygon."""
    return shapely.box(X0 + col0, Y0 - row1, X0 + col1, Y0 - row0)


def write_vector(path, geoms, values, crs="EPSG:3857", layer=None, field="class", kind=None):
    """Shapes and one attribute as a GeoPackage (or whatever the suffix says), no geopandas."""
    values = np.asarray(values, dtype=object if isinstance(values[0], str) else None)
    kind = kind or {0: "Point", 1: "LineString", 3: "Polygon"}[shapely.get_type_id(geoms[0])]
    pyogrio.raw.write(
        path,
        geometry=shapely.to_wkb(np.asarray(geoms, dtype=object)),
        field_data=[values],
        fields=[field],
        crs=crs,
        geometry_type=kind,
        layer=layer,
        append=False,
    )
    return path


def expected(shape, *boxes):
    out = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    for (r0, c0, r1, c1), value in boxes:
        out[r0:r1, c0:c1] = value
    return out


def test_a_square_in_web_mercator_lands_on_its_pixels_of_a_utm_image(tmp_path):
    image = utm_image(tmp_path)
    square = reproject([utm_box(10, 20, 30, 40)], UTM33, "EPSG:3857")
    gpkg = write_vector(tmp_path / "squares.gpkg", square, ["Water"])
    labels = rasterize_labels(gpkg, image, DUBAI, "class")
    np.testing.assert_array_equal(labels, expected((64, 64), ((10, 20, 30, 40), 4)))


def test_a_hand_written_geojson_lands_on_a_utm_image(tmp_path):
    image = utm_image(tmp_path)
    (square,) = reproject([utm_box(5, 6, 15, 26)], UTM33, "EPSG:4326")
    feature = {
        "type": "Feature",
        "properties": {"class": 2},
        "geometry": shapely.geometry.mapping(square),
    }
    path = tmp_path / "roads.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    labels = rasterize_labels(path, image, DUBAI, "class")
    np.testing.assert_array_equal(labels, expected((64, 64), ((5, 6, 15, 26), 2)))


def test_a_square_in_utm_lands_on_its_pixels_of_a_geographic_image(tmp_path):
    image = lonlat_image(tmp_path)
    lonlat = shapely.box(LON0 + 8 * STEP, LAT0 - 40 * STEP, LON0 + 30 * STEP, LAT0 - 12 * STEP)
    (square,) = reproject([shapely.segmentize(lonlat, STEP)], "EPSG:4326", UTM33)
    gpkg = write_vector(tmp_path / "s.gpkg", [square], ["vegetation"], crs=UTM33)
    labels = rasterize_labels(gpkg, image, DUBAI, "class")
    np.testing.assert_array_equal(labels, expected((64, 64), ((12, 8, 40, 30), 3)))


def test_a_line_labels_a_band_line_width_metres_wide_on_a_utm_image(tmp_path):
    image = utm_image(tmp_path)
    line = shapely.LineString([(X0 - 10, Y0 - 32), (X0 + 80, Y0 - 32)])  # a row boundary
    gpkg = write_vector(tmp_path / "l.gpkg", reproject([line], UTM33, "EPSG:3857"), ["road"])
    labels = rasterize_labels(gpkg, image, DUBAI, "class", line_width=6)
    np.testing.assert_array_equal(labels, expected((64, 64), ((29, 0, 35, 64), 2)))


def test_a_line_width_is_metres_on_a_geographic_image_too(tmp_path):
    # 6 m is 2.7 rows of 1e-5 degrees of latitude: the centres of 3 rows on either side
    image = lonlat_image(tmp_path)
    lat = LAT0 - 32 * STEP
    line = shapely.LineString([(LON0 - STEP, lat), (LON0 + 70 * STEP, lat)])
    gpkg = write_vector(tmp_path / "l.gpkg", [line], ["Road"], crs="EPSG:4326")
    labels = rasterize_labels(gpkg, image, DUBAI, "class", line_width=6)
    np.testing.assert_array_equal(labels, expected((64, 64), ((29, 0, 35, 64), 2)))


def test_the_smaller_shape_wins_and_equal_ones_the_later(tmp_path):
    image = utm_image(tmp_path)
    shapes = [utm_box(20, 20, 30, 30), utm_box(0, 0, 64, 64), utm_box(40, 0, 50, 10)]
    shapes.append(utm_box(40, 0, 50, 10))  # the same square again, another class
    gpkg = write_vector(tmp_path / "o.gpkg", shapes, ["building", "land", "road", "water"], UTM33)
    labels = rasterize_labels(gpkg, image, DUBAI, "class")
    want = expected((64, 64), ((0, 0, 64, 64), 1), ((20, 20, 30, 30), 0), ((40, 0, 50, 10), 4))
    np.testing.assert_array_equal(labels, want)


@pytest.mark.parametrize("values", [["BUILDING", " Water "], [0, 4], [0.0, 4.0], ["0", "4"]])
def test_classes_by_name_in_any_case_or_by_index(tmp_path, values):
    image = utm_image(tmp_path)
    shapes = [utm_box(0, 0, 10, 10), utm_box(10, 10, 20, 20)]
    gpkg = write_vector(tmp_path / "c.gpkg", shapes, values, UTM33)
    labels = rasterize_labels(gpkg, image, DUBAI, "class")
    np.testing.assert_array_equal(
        labels, expected((64, 64), ((0, 0, 10, 10), 0), ((10, 10, 20, 20), 4))
    )


def test_a_self_intersecting_polygon_is_repaired_and_counted(tmp_path, capsys):
    image = utm_image(tmp_path)
    bowtie = shapely.Polygon(
        [(X0, Y0), (X0 + 20, Y0 - 20), (X0 + 20, Y0), (X0, Y0 - 20)]
    )  # two triangles meeting at (10, 10)
    gpkg = write_vector(tmp_path / "b.gpkg", [bowtie, utm_box(40, 40, 50, 50)], [1, 2], UTM33)
    labels = rasterize_labels(gpkg, image, DUBAI, "class")
    assert (labels == 1).sum() == 200  # two triangles of 20 x 10 / 2 = 100 m² each
    assert (labels[40:50, 40:50] == 2).all()
    err = capsys.readouterr().err
    assert "1 invalid geometries: 1 repaired, 0 skipped" in err and err.count("\n") == 1


def test_a_folder_gives_samples_of_the_images_the_shapes_overlap(tmp_path, capsys):
    folder = tmp_path / "images"
    utm_image(folder, "a.tif")
    utm_image(folder, "b.tif", x0=X0 + 10_000)  # 10 km east: no shape there
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "c.png")  # no georeference
    gpkg = write_vector(tmp_path / "v.gpkg", [utm_box(1, 2, 3, 4)], ["Road"], UTM33)
    samples = vector_samples(tmp_path, gpkg, DUBAI, VectorOptions("class"))
    assert [s.id for s in samples] == ["a"] and samples[0].image.shape == (64, 64, 3)
    assert (samples[0].labels == 2).sum() == 4 and (samples[0].labels != 255).sum() == 4
    assert "labels 1 of 3 images (1 the shapes miss, 1 not georeferenced: skipped)" in (
        capsys.readouterr().err
    )


# --- bad input: one line naming the file and the problem -------------------------------------


def refused(*args, **kw) -> str:
    with pytest.raises(AerialSegError) as e:
        rasterize_labels(*args, **kw)
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.fixture
def image(tmp_path):
    return utm_image(tmp_path / "img")


def two_layers(tmp_path):
    path = tmp_path / "two.gpkg"
    write_vector(path, [utm_box(0, 0, 9, 9)], ["land"], UTM33, layer="parcels")
    write_vector(path, [utm_box(0, 0, 9, 9)], ["road"], UTM33, layer="roads")
    return path


def test_refuses_a_file_that_is_no_vector_file(tmp_path, image):
    bad = tmp_path / "broken.gpkg"
    bad.write_bytes(b"not a geopackage at all")
    assert refused(bad, image, DUBAI, "class").startswith(f"{bad}: cannot open as a vector file")
    assert refused(tmp_path / "gone.gpkg", image, DUBAI, "class").endswith("no such vector file")


def test_refuses_a_layer_that_is_not_there_listing_them(tmp_path, image):
    path = two_layers(tmp_path)
    msg = refused(path, image, DUBAI, "class", layer="rivers")
    assert msg == f"{path}: no layer 'rivers'; its layers: parcels, roads"


def test_refuses_a_multi_layer_file_without_a_layer(tmp_path, image):
    path = two_layers(tmp_path)
    msg = refused(path, image, DUBAI, "class")
    assert msg == f"{path}: has 2 layers, pick one with --layer: parcels, roads"
    assert (rasterize_labels(path, image, DUBAI, "class", layer="roads")[:9, :9] == 2).all()


@pytest.mark.parametrize("field", [None, "kind"])
def test_refuses_no_or_a_missing_class_field_listing_the_fields(tmp_path, image, field):
    path = write_vector(tmp_path / "f.gpkg", [utm_box(0, 0, 9, 9)], ["land"], UTM33)
    msg = refused(path, image, DUBAI, field)
    what = "no --class-field given" if field is None else "no field 'kind'"
    assert msg == f"{path} (layer f): {what}; its fields: class"


def test_refuses_a_value_that_is_no_class_listing_the_classes(tmp_path, image):
    path = write_vector(tmp_path / "v.gpkg", [utm_box(0, 0, 9, 9)] * 2, ["land", "Forest"], UTM33)
    msg = refused(path, image, DUBAI, "class")
    assert msg.startswith(f"{path} (layer v), field 'class': value 'Forest' (feature 2)")
    assert msg.endswith(
        "the classes: 0 Building, 1 Land, 2 Road, 3 Vegetation, 4 Water, 5 Unlabeled"
    )
    assert "no class" in refused(
        write_vector(tmp_path / "i.gpkg", [utm_box(0, 0, 9, 9)], [6], UTM33), image, DUBAI, "class"
    )


def test_refuses_shapes_that_overlap_no_image_giving_both_extents(tmp_path, image):
    far = utm_box(0, 0, 9, 9).buffer(0)
    far = shapely.affinity.translate(far, 5000, 0)
    path = write_vector(tmp_path / "far.gpkg", [far], ["land"], UTM33)
    msg = refused(path, image, DUBAI, "class")
    assert msg.startswith(f"{path}: the shapes label no pixel of utm.tif; shapes span lon 15.06")
    assert "the image lon 15.000000..15.000" in msg and msg.endswith("(lon/lat, EPSG:4326)")


def test_refuses_an_empty_layer(tmp_path, image):
    path = tmp_path / "empty.gpkg"
    pyogrio.raw.write(
        path,
        geometry=np.array([], dtype=object),
        field_data=[np.array([], dtype=object)],
        fields=["class"],
        crs=UTM33,
        geometry_type="Polygon",
    )
    assert refused(path, image, DUBAI, "class") == f"{path} (layer empty): the layer is empty"


def test_refuses_points(tmp_path, image):
    path = write_vector(tmp_path / "p.gpkg", [shapely.Point(X0 + 1, Y0 - 1)], ["land"], UTM33)
    msg = refused(path, image, DUBAI, "class")
    assert msg == f"{path} (layer p): 1 point features; labels need polygons (or lines)"


def test_refuses_lines_without_a_width(tmp_path, image):
    line = shapely.LineString([(X0, Y0 - 5), (X0 + 9, Y0 - 5)])
    path = write_vector(tmp_path / "l.gpkg", [line], ["road"], UTM33)
    msg = refused(path, image, DUBAI, "class")
    assert msg == f"{path} (layer l): 1 line features; give --line-width METRES"


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_refuses_a_vector_without_crs_or_one_that_cannot_be_transformed(tmp_path, image):
    path = write_vector(tmp_path / "n.gpkg", [utm_box(0, 0, 9, 9)], ["land"], crs=None)
    assert refused(path, image, DUBAI, "class") == (
        f"{path} (layer n): has no coordinate system (CRS); assign one in a GIS"
    )
    # a Mars CRS: no transformation to the Earth's
    mars = pyproj.CRS.from_proj4("+proj=longlat +a=3396190 +b=3376200 +no_defs").to_wkt()
    path = write_vector(tmp_path / "m.gpkg", [shapely.box(1, 1, 2, 2)], ["land"], crs=mars)
    assert "cannot transform from" in refused(path, image, DUBAI, "class")


def test_refuses_an_image_without_georeferencing(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plain)
    path = write_vector(tmp_path / "v.gpkg", [utm_box(0, 0, 9, 9)], ["land"], UTM33)
    assert refused(path, plain, DUBAI, "class").startswith(
        f"{plain}: image has no georeferencing (CRS and geotransform)"
    )


# --- the commands ----------------------------------------------------------------------------


def reference(tmp_path):
    """A dataset root with two UTM images (b.tif 10 km away from every shape) and reference
    shapes in Web Mercator over a.tif: 200 Land and 100 Water pixels."""
    utm_image(tmp_path / "data" / "images", "a.tif")
    utm_image(tmp_path / "data" / "images", "b.tif", x0=X0 + 10_000)
    boxes = reproject([utm_box(0, 0, 10, 20), utm_box(30, 30, 40, 40)], UTM33, "EPSG:3857")
    return tmp_path / "data", write_vector(tmp_path / "ref.gpkg", boxes, ["Land", "water"])


def test_evaluate_against_reference_shapes_end_to_end(tmp_path, tiny_model, capsys):
    from aerialseg.cli import main

    data, gpkg = reference(tmp_path)
    common = ["evaluate", "--model", str(tiny_model), "--data", str(data), "--labels", str(gpkg)]
    assert main([*common, "--class-field", "class", "--json", "-q"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["images"] == ["a"]  # b.tif: missed by the shapes, skipped
    confusion = np.array(result["confusion_matrix"])
    assert confusion.sum() == 300 and confusion[1].sum() == 200 and confusion[4].sum() == 100
    assert -1 <= result["kappa"] <= 1
    assert result["producers_accuracy"]["Road"] is None  # no Road in the reference
    assert set(result["users_accuracy"]) == set(DUBAI.names)
    assert "labels 1 of 2 images (1 the shapes miss: skipped)" in captured.err
    assert main([*common, "--class-field", "class", "-q"]) == 0
    table = capsys.readouterr().out
    assert "Cohen kappa" in table and "IoU    user  producer" in table


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--class-field", "class"], "--class-field is for vector --labels"),
        (["--labels", "{gpkg}", "--class-field", "kind"], "no field 'kind'; its fields: class"),
        (["--labels", "{gpkg}"], "no --class-field given; its fields: class"),
        (["--labels", "{data}", "--class-field", "class"], "--labels takes a vector file"),
    ],
)
def test_evaluate_refuses_bad_vector_flags_before_loading_the_model(
    tmp_path, capsys, flags, message
):
    from aerialseg.cli import main

    data, gpkg = reference(tmp_path)
    flags = [f.format(gpkg=gpkg, data=data) for f in flags]
    missing = tmp_path / "no-such-model.safetensors"  # the model would be refused later
    assert main(["evaluate", "--model", str(missing), "--data", str(data), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aerialseg: error: ") and message in err and err.count("\n") == 1


def test_train_and_finetune_learn_from_shapes(tmp_path, tiny_model, capsys):
    from aerialseg.cli import main

    for i in range(3):  # three images side by side, one shape on each
        utm_image(tmp_path / "data" / "images", f"t{i}.tif", x0=X0 + 64 * i)
    boxes = [shapely.affinity.translate(utm_box(8, 8, 40, 40), 64 * i, 0) for i in range(3)]
    gpkg = write_vector(tmp_path / "v.gpkg", boxes, ["land", "water", "road"], UTM33)
    vector = ["--labels", str(gpkg), "--class-field", "class"]
    run = tmp_path / "run"
    tiny = ["--arch", "unet", "--base-filters", "4", "--patch-size", "32", "--batch-size", "2"]
    tiny += ["--patches-per-epoch", "4", "--epochs", "1", "--examples", "1", "-q"]
    assert main(["train", "--data", str(tmp_path / "data"), *vector, "--out", str(run), *tiny]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == str(gpkg) and config["class_field"] == "class"
    new = tmp_path / "new.safetensors"
    assert (
        main(
            ["finetune", "--model", str(tiny_model), "--images", str(tmp_path / "data")]
            + [*vector, "--out", str(new), "--steps", "1", "--patch-size", "32", "-q"]
        )
        == 0
    )
    assert new.is_file() and "on 3,072 labelled pixels of 3 image(s)" in capsys.readouterr().out
