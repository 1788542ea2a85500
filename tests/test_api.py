"""aerialseg.segment: every kind of picture a notebook holds gives the labels the Segmenter gives
the same picture as (H, W, 3) uint8 RGB, and wrong inputs one line that names them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import aerialseg
from aerialseg import api
from aerialseg.errors import AerialSegError
from aerialseg.inference.segmenter import load_model

from .helpers import make_scene


@pytest.fixture(scope="module")
def seg(tiny_model):
    return load_model(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def photo():
    return make_scene(40, 56, seed=3)[0]


def write_tif(path, data: np.ndarray, **profile):
    """(bands, H, W) values as a GeoTIFF on a UTM grid of 0.5 m pixels."""
    rasterio = pytest.importorskip("rasterio")
    from affine import Affine

    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "crs": "EPSG:32633",
        "transform": Affine(0.5, 0, 500000, 0, -0.5, 4500000),
        **profile,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_is_exported_lazily_from_the_package():
    assert aerialseg.segment is api.segment
    assert "segment" in aerialseg.__all__


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a,
        lambda a: np.ascontiguousarray(a.transpose(2, 0, 1)),  # (C, H, W) as rasterio reads
        lambda a: np.dstack([a, np.full(a.shape[:2], 99, np.uint8)]),  # alpha is dropped
        Image.fromarray,
        lambda a: Image.fromarray(a).convert("RGBA"),
    ],
    ids=["hwc", "chw", "hwc-alpha", "pil-rgb", "pil-rgba"],
)
def test_rgb_pictures_give_the_segmenters_labels(seg, photo, convert):
    out = aerialseg.segment(convert(photo), seg)
    assert out.dtype == np.uint8 and out.shape == photo.shape[:2]
    assert np.array_equal(out, seg.segment(photo))


def test_grey_and_palette_pictures_are_segmented_as_their_rgb(seg, photo):
    grey = photo[..., 1]
    expected = seg.segment(np.repeat(grey[..., None], 3, axis=2))
    assert np.array_equal(aerialseg.segment(grey, seg), expected)
    assert np.array_equal(aerialseg.segment(Image.fromarray(grey), seg), expected)
    pal = Image.fromarray(photo).quantize(16)
    assert np.array_equal(aerialseg.segment(pal, seg), seg.segment(np.asarray(pal.convert("RGB"))))


def test_bands_pick_red_green_blue(seg, photo):
    bgr = np.ascontiguousarray(photo[..., ::-1].transpose(2, 0, 1))
    assert np.array_equal(aerialseg.segment(bgr, seg, bands=(3, 2, 1)), seg.segment(photo))


def test_plain_picture_path_is_read_as_pillow_reads_it(seg, photo, tmp_path):
    Image.fromarray(photo).save(tmp_path / "photo.png")
    assert np.array_equal(aerialseg.segment(tmp_path / "photo.png", seg), seg.segment(photo))
    assert np.array_equal(aerialseg.segment(str(tmp_path / "photo.png"), seg), seg.segment(photo))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_deep_arrays_are_scaled_as_the_cli_scales_the_same_raster(seg, tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = (rng.random((3, 40, 56)) * (3000 if dtype == "uint16" else 0.4)).astype(dtype)
    from_file = aerialseg.segment(write_tif(tmp_path / "deep.tif", data), seg)
    assert np.array_equal(aerialseg.segment(data, seg), from_file)
    assert np.array_equal(aerialseg.segment(data.transpose(1, 2, 0), seg), from_file)
    if dtype == "uint16":  # Pillow's 16-bit grey: one band, scaled the same way
        grey = np.ascontiguousarray(data[0])
        expected = aerialseg.segment(np.stack([grey] * 3), seg)
        assert np.array_equal(aerialseg.segment(Image.fromarray(grey), seg), expected)


def test_geotiff_labels_match_and_nodata_is_255(seg, photo, tmp_path):
    rgb = photo.copy()
    rgb[:5] = 0  # the raster's nodata value: no data in the top 5 rows
    path = write_tif(tmp_path / "ortho.tif", rgb.transpose(2, 0, 1), nodata=0)
    labels, probs = aerialseg.segment(path, seg, probabilities=True)
    expected = seg.segment(rgb)
    assert (labels[:5] == 255).all() and (probs[:5] == 0).all()
    assert np.array_equal(labels[5:], expected[5:])


def test_probabilities_are_per_class_and_agree_with_the_labels(seg, photo):
    labels, probs = aerialseg.segment(photo, seg, probabilities=True)
    assert probs.shape == (*photo.shape[:2], len(seg.classes.names))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-4)
    assert np.array_equal(labels, probs.argmax(-1)) and np.array_equal(labels, seg.segment(photo))


def test_tta_is_passed_on(seg, photo):
    assert np.array_equal(aerialseg.segment(photo, seg, tta=True), seg.segment(photo, tta=True))


def test_a_model_path_is_loaded_once(tiny_model, photo):
    first = api._segmenter(tiny_model)
    assert api._segmenter(str(tiny_model)) is first
    assert np.array_equal(aerialseg.segment(photo, tiny_model), first.segment(photo))


def test_the_bundled_model_is_loaded_once_per_process(photo):
    assert api._segmenter(None) is api._segmenter(None)
    assert aerialseg.segment(photo).shape == photo.shape[:2]


@pytest.mark.parametrize(
    ("image", "kwargs", "says"),
    [
        ([[1, 2], [3, 4]], {}, "got list"),
        (np.zeros((2, 8, 8, 3), np.uint8), {}, "got shape (2, 8, 8, 3)"),
        (np.zeros((8, 8, 3), bool), {}, "got bool"),
        (np.zeros((8, 8, 3), complex), {}, "got complex128"),
        (np.zeros((2, 8, 8), np.uint8), {}, "has 2 bands"),
        (np.zeros((0, 8, 3), np.uint8), {}, "got shape (0, 8, 3)"),
        (np.zeros((3, 8, 8), np.uint8), {"bands": (4, 2, 1)}, "bands=(4, 2, 1)"),
        (np.zeros((8, 8, 3), np.uint16), {"stretch": "p98,p2"}, "p98,p2"),
        ("missing.png", {}, "missing.png: no such file"),
    ],
)
def test_wrong_pictures_are_one_line_that_names_them(seg, image, kwargs, says):
    if kwargs.get("stretch"):
        pytest.importorskip("rasterio")
    with pytest.raises(AerialSegError) as e:
        aerialseg.segment(image, seg, **kwargs)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_wrong_models_are_one_line(photo, tmp_path):
    with pytest.raises(AerialSegError, match="got int"):
        aerialseg.segment(photo, 3)
    with pytest.raises(AerialSegError, match="nothing.safetensors: no such model file"):
        aerialseg.segment(photo, tmp_path / "nothing.safetensors")
