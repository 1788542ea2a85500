import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("rasterio")

from aerialseg.errors import AerialSegError  # noqa: E402
from aerialseg.inference.segmenter import load_segmenter  # noqa: E402
from aerialseg.inference.tiling import Tiling  # noqa: E402
from aerialseg.io.images import read_image  # noqa: E402
from aerialseg.io.outputs import output_paths, overlay  # noqa: E402
from aerialseg.jobs import picture as picture_job  # noqa: E402
from aerialseg.jobs.image import segment_image_to_files  # noqa: E402
from aerialseg.jobs.picture import segment_picture_streamed, streams  # noqa: E402

from ..helpers import make_scene  # noqa: E402


@pytest.fixture(scope="module")
def seg(tiny_model):
    return load_segmenter(tiny_model, "fp32", Tiling(window=64, overlap=0.25))


def picture(path, h, w, seed=0):
    photo, _ = make_scene(h, w, seed)
    Image.fromarray(photo).save(path)
    return path


def both_ways(seg, path, tmp_path, probabilities=False, **kw):
    """The outputs of the in-memory and the streamed path: (paths, paths)."""
    old = output_paths(tmp_path / "memory", "pic", probabilities)
    new = output_paths(tmp_path / "streamed", "pic", probabilities)
    segment_image_to_files(seg, read_image(path), old, str(path), opacity=0.4, gsd=0.5)
    segment_picture_streamed(seg, path, new, opacity=0.4, gsd=0.5, **kw)
    return old, new


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im).astype(int)


def test_streamed_outputs_equal_the_in_memory_ones(seg, tmp_path):
    path = picture(tmp_path / "pic.png", 150, 230)
    old, new = both_ways(seg, path, tmp_path, probabilities=True)
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == sorted(
        p.name for p in (tmp_path / "memory").iterdir()
    )
    for key in ("labels", "mask", "figure"):  # encoders differ, pixels do not
        assert np.array_equal(pixels(new[key]), pixels(old[key])), key
    assert json.loads(new["stats_json"].read_text()) == json.loads(old["stats_json"].read_text())
    assert new["stats_csv"].read_text() == old["stats_csv"].read_text()
    # the overlay JPEG: the same picture through another JPEG encoder (GDAL's), as close to it
    exact = overlay(read_image(path), pixels(old["labels"]).astype(np.uint8), seg.classes, 0.4)
    err = [np.abs(pixels(p["overlay"]) - exact).mean() for p in (new, old)]
    assert err[0] < 1.1 * err[1]
    assert np.allclose(np.load(new["probs"]), np.load(old["probs"]), atol=1e-3)


def test_where_column_chunks_meet_the_labels_agree(seg, tmp_path):
    path = picture(tmp_path / "wide.png", 60, 420, seed=3)
    old, new = both_ways(seg, path, tmp_path, chunk=120)
    assert (pixels(new["labels"]) == pixels(old["labels"])).mean() > 0.999
    stats = json.loads(new["stats_json"].read_text())
    assert sum(c["pixels"] for c in stats["classes"]) == 60 * 420  # every pixel once


def test_which_pictures_stream(seg, tmp_path, monkeypatch):
    path = picture(tmp_path / "pic.png", 40, 50)
    assert streams(seg, path, min_pixels=0) == (40, 50)
    assert streams(seg, path) is None  # small: read whole
    assert streams(seg, path, max_pixels=1999, min_pixels=0) is None  # refused as before
    assert streams(seg.resampled(0.5), path, min_pixels=0) is None  # scales: read whole
    photo = np.asarray(Image.open(path))
    Image.fromarray(photo[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([photo, photo[..., :1]])).save(tmp_path / "rgba.png")
    turned = Image.fromarray(photo)
    exif = turned.getexif()
    exif[0x0112] = 6  # rotated: Pillow turns it, GDAL would not
    turned.save(tmp_path / "turned.jpg", exif=exif)
    Image.fromarray(photo).save(tmp_path / "progressive.jpg", progressive=True)
    Image.fromarray(photo).save(tmp_path / "plain.jpg")
    assert streams(seg, tmp_path / "plain.jpg", min_pixels=0) == (40, 50)
    for name in ("grey.png", "rgba.png", "turned.jpg", "progressive.jpg"):
        assert streams(seg, tmp_path / name, min_pixels=0) is None, name
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own guard: not ours
    assert streams(seg, path, min_pixels=0) == (40, 50)


def test_a_failure_leaves_no_file_behind(seg, tmp_path, monkeypatch):
    path = picture(tmp_path / "pic.png", 90, 120)
    out = tmp_path / "out"

    def broken(*a, **k):
        raise AerialSegError("disk full")

    monkeypatch.setattr(picture_job, "paint_overlay", broken)  # after the windows have run
    with pytest.raises(AerialSegError, match="disk full"):
        segment_picture_streamed(seg, path, output_paths(out, "pic", True))
    assert list(out.iterdir()) == []  # no outputs, no temporaries, no scratch files


def test_a_truncated_picture_is_one_line_naming_it(seg, tmp_path):
    path = picture(tmp_path / "pic.png", 300, 400)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(AerialSegError, match=r"pic\.png: cannot read image") as e:
        segment_picture_streamed(seg, path, output_paths(out, "pic"))
    assert "\n" not in str(e.value)
    assert list(out.iterdir()) == []


def png_with_chunk(path, chunk: bytes, before_pixels: bool):
    """``path`` (a PNG) with ``chunk`` (type + data) inserted before its first IDAT or IEND."""
    import struct
    import zlib

    data = path.read_bytes()
    at = data.index(b"IDAT" if before_pixels else b"IEND") - 4
    kind, body = chunk[:4], chunk[4:]
    raw = struct.pack(">I", len(body)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    assert kind.isalpha()
    path.write_bytes(data[:at] + raw + data[at:])
    return path


def test_a_png_is_checked_for_rotation_without_decoding_it(seg, tmp_path, monkeypatch):
    """Pillow decodes a whole PNG to look for EXIF after its pixels (a 40 000² one: 4.8 GB);
    the chunks are walked instead, and a picture with metadata there is read whole."""
    from PIL import PngImagePlugin

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    body = exif.tobytes()
    body = body[6:] if body.startswith(b"Exif\x00\x00") else body
    plain = picture(tmp_path / "plain.png", 40, 50)
    before = png_with_chunk(picture(tmp_path / "b.png", 40, 50), b"eXIf" + body, True)
    after = png_with_chunk(picture(tmp_path / "a.png", 40, 50), b"eXIf" + body, False)
    dated = png_with_chunk(picture(tmp_path / "t.png", 40, 50), b"tIME" + bytes(7), False)
    for path in (before, after):  # the in-memory reader would turn both
        with Image.open(path) as im:
            assert im.getexif().get(0x0112) == 6
    assert streams(seg, after, min_pixels=0) is None

    def decoded(*a, **k):
        raise AssertionError("the picture was decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", decoded)
    assert streams(seg, plain, min_pixels=0) == (40, 50)
    assert streams(seg, dated, min_pixels=0) == (40, 50)  # not metadata that turns it
    assert streams(seg, before, min_pixels=0) is None  # rotated, seen from the header
