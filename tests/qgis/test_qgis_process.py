"""The plugin inside real QGIS: ``qgis_process run aerialseg:...`` on real orthophotos
(``../shared/datasets/other-places/unlabelled``), headless. Skips where QGIS or the photos
are absent. The plugin is installed into a temporary HOME's QGIS profile, which is where
qgis_process looks for it."""

import subprocess
from pathlib import Path

import pytest

from .qgis_helpers import NAMES, QGIS_PROCESS, install_plugin, photo, qgis_env, qgis_process

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")
if QGIS_PROCESS is None:
    pytest.skip("QGIS (qgis_process) not installed", allow_module_level=True)

# (file, its EPSG code, extra parameters): two of the three small ones (≤ 0.35 MP) in the
# default run; the four of 1 MP and more (11-32 s each on 2 cores) with `-m slow`
SLOW = pytest.mark.slow
PHOTOS = [
    ("zurich-lakeshore-50cm.tif", 2056, {}),
    ("neon-osbs-forest-10cm.tif", 32617, {}),
    # the same kind as neon-osbs (UTM, 10 cm, 3 bands); tests/qgis/test_in_qgis maps it too
    pytest.param("neon-sjer-savanna-10cm.tif", 32611, {}, marks=SLOW),
    pytest.param("netherlands-river-25cm.tif", 28992, {}, marks=SLOW),
    pytest.param("drone-field-2cm-rgba.tif", 32633, {}, marks=SLOW),
    pytest.param("adelaide-fields-oem.tif", 4326, {}, marks=SLOW),
    pytest.param("oam-river-bridge-10cm.tif", 3395, {"NODATA": 0}, marks=SLOW),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A HOME whose default QGIS profile has the plugin installed and enabled."""
    home = tmp_path_factory.mktemp("home")
    install_plugin(home)
    return home


def test_the_provider_lists_its_algorithms(home):
    r = subprocess.run([QGIS_PROCESS, "list"], capture_output=True, text=True, env=qgis_env(home))
    for alg in ("aerialseg:segment", "aerialseg:finetune", "aerialseg:zonal_stats"):
        assert alg in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


@pytest.mark.parametrize("name, epsg, extra", PHOTOS)
def test_segment_keeps_the_grid_and_writes_styled_labels_polygons_and_table(
    home, tmp_path, name, epsg, extra
):
    import numpy as np
    import shapely

    src = photo(name)
    out = tmp_path / "land cover.tif"
    results = qgis_process(home, "aerialseg:segment", INPUT=src, OUTPUT=out,
                           OUTPUT_VECTOR=tmp_path / "polygons.gpkg",
                           OUTPUT_TABLE=tmp_path / "table.gpkg", **extra)  # fmt: skip
    assert Path(results["OUTPUT"]) == out
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.crs.to_epsg() == a.crs.to_epsg() == epsg
        assert (b.transform, b.width, b.height) == (a.transform, a.width, a.height)
        assert b.bounds == a.bounds
        assert b.colormap(1)[0][:3] != (0, 0, 0) or b.colormap(1)[1][:3] != (0, 0, 0)
        labels = b.read(1)
        pixel = abs(b.transform.determinant)
        black = (a.read() == 0).all(axis=0) if "NODATA" in extra else None
    qml = out.with_suffix(".qml").read_text()
    aux = Path(f"{out}.aux.xml").read_text()
    assert all(n in qml and n in aux for n in NAMES)
    _, _, wkb, _ = pyogrio.raw.read(tmp_path / "polygons.gpkg", layer="polygons")
    mapped = (labels != 255).sum() * pixel  # in the CRS's units: degrees² for EPSG:4326
    assert shapely.area(shapely.from_wkb(wkb)).sum() == pytest.approx(mapped, rel=0.01)
    assert 0 < len(wkb) < labels.size / 16  # at least one polygon, none under the 16 px MMU
    meta, _, _, table = pyogrio.raw.read(tmp_path / "table.gpkg")
    pixels = table[list(meta["fields"]).index("pixels")]
    assert np.sum(pixels) == (labels != 255).sum()
    if black is not None:  # the black no-data corner of the OpenAerialMap tile
        assert black.sum() > 10_000 and (labels[black] == 255).all()
    assert not list(tmp_path.glob(".aerialseg-*"))  # the work folder is gone


def write_polygon(path: Path, polygon, crs: str) -> Path:
    import numpy as np
    import shapely

    pyogrio.raw.write(path, shapely.to_wkb([polygon]), field_data=[np.array(["in"], object)],
                      fields=["name"], driver="GPKG", crs=crs, geometry_type="Polygon")  # fmt: skip
    return path


def test_a_mask_leaves_every_output_empty_outside_its_polygons(home, tmp_path):
    """The mask is in EPSG:4326, the photo in EPSG:2056: GDAL reprojects the polygons."""
    import numpy as np
    import pyproj
    import shapely

    src = photo("zurich-lakeshore-50cm.tif")
    with rasterio.open(src) as r:
        left, bottom, right, top = r.bounds
        crs, w = r.crs.to_wkt(), r.width
    west = shapely.box(left, bottom, (left + right) / 2, top)
    to_ll = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
    ll = shapely.transform(west.segmentize(5), lambda xy: np.column_stack(to_ll(*xy.T)))
    mask = write_polygon(tmp_path / "mask.gpkg", ll, "EPSG:4326")
    out = tmp_path / "masked.tif"
    qgis_process(home, "aerialseg:segment", INPUT=src, MASK=mask, OUTPUT=out,
                 OUTPUT_VECTOR=tmp_path / "polygons.gpkg",
                 OUTPUT_CONFIDENCE=tmp_path / "confidence.tif",
                 OUTPUT_TABLE=tmp_path / "table.gpkg")  # fmt: skip
    with rasterio.open(out) as b, rasterio.open(tmp_path / "confidence.tif") as c:
        with rasterio.open(src) as a:
            assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)
        labels, conf, pixel = b.read(1), c.read(1), abs(b.transform.determinant)
    half = w // 2
    assert (labels[:, half + 2 :] == 255).all() and (conf[:, half + 2 :] == 0).all()
    assert (labels[:, : half - 2] != 255).mean() > 0.99
    _, _, wkb, _ = pyogrio.raw.read(tmp_path / "polygons.gpkg", layer="polygons")
    polygons = shapely.union_all(shapely.from_wkb(wkb))
    assert polygons.difference(west.buffer(2 * 0.5)).area == pytest.approx(0, abs=1)
    meta, _, _, table = pyogrio.raw.read(tmp_path / "table.gpkg")
    area = np.sum(table[list(meta["fields"]).index("area_m2")])
    assert area == pytest.approx(west.area, rel=0.01)
    assert (labels != 255).sum() * pixel == pytest.approx(west.area, rel=0.01)


def test_zonal_stats_gives_each_zone_its_class_areas(home, tmp_path):
    import shapely

    src = photo("neon-sjer-savanna-10cm.tif")
    with rasterio.open(src) as r:
        left, bottom, right, top = r.bounds
        crs = r.crs.to_wkt()
    half = shapely.box(left, bottom, (left + right) / 2, top)  # the western half
    zones = write_polygon(tmp_path / "zones.gpkg", half, crs)
    qgis_process(home, "aerialseg:zonal_stats", INPUT=src, ZONES=zones,
                 OUTPUT=tmp_path / "per zone.gpkg", NODATA=0)  # fmt: skip
    meta, _, _, values = pyogrio.raw.read(tmp_path / "per zone.gpkg")
    row = dict(zip(meta["fields"], (v[0] for v in values)))
    assert row["name"] == "in"
    total = sum(v for k, v in row.items() if k.endswith("_m2"))
    assert total == pytest.approx(half.area, rel=0.01)
    assert sum(v for k, v in row.items() if k.endswith("_pct")) == pytest.approx(100, abs=0.1)
