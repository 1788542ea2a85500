"""``aerialseg segment`` against the corpus: a bad file is reported in one line and the
others are still done; a bad model, output folder or disk stops it in one line; nothing is
ever left half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ..helpers import tiny_checkpoint
from .cases import BAD_IMAGES, MODEL_KINDS, ODD_IMAGES, bad_models, good_image
from .conftest import fill, leftovers, refused, run_cli, skipped

SUFFIXES = ("_labels.png", "_mask.png", "_overlay.jpg", "_figure.png", "_stats.json", "_stats.csv")


def segment(cli, model, *args):
    return cli("segment", *args, "--model", model, "-q")


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """One run over a folder of every bad kind beside one good image (one run, not one per
    kind: the CLI, model and figure cost the same for all)."""
    tmp = tmp_path_factory.mktemp("bad")
    inputs = tmp / "in"
    paths = {}
    for kind, (make, _) in BAD_IMAGES.items():
        (inputs / kind).mkdir(parents=True)
        paths[kind] = make(inputs / kind)
    good_image(inputs)
    out = tmp / "out"
    r = run_cli("segment", inputs, "--model", tiny_checkpoint(tmp / "m.safetensors"), "-q",
                "--out", out)  # fmt: skip
    return r, paths, out


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_a_bad_image_is_reported_and_the_others_are_done(kind, bad_run):
    r, paths, out = bad_run
    skipped(r, str(paths[kind]), BAD_IMAGES[kind][1])
    assert len(r.error_lines) == len(BAD_IMAGES) and "segmented 1 image " in r.out
    assert leftovers(out) == [f"good{s}" for s in sorted(SUFFIXES)]  # no temporary files


def test_a_bomb_can_be_allowed_with_max_pixels(cli, segmenter, tmp_path):
    """The limit is what --max-pixels says: the hint in the error is the way through."""
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    big, out = tmp_path / "big.png", tmp_path / "o"
    r = segment(cli, segmenter, big, "--out", out, "--max-pixels", "50000")
    skipped(r, "big.png", "300x200 is over the 50,000-pixel limit (--max-pixels raises it)")
    r = segment(cli, segmenter, big, "--out", out, "--max-pixels", "60000")
    assert r.code == 0, r.err


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("odd")
    paths = {kind: make(tmp / "in") for kind, (make, _) in ODD_IMAGES.items()}
    out = tmp / "out"
    r = run_cli("segment", *paths.values(), "--model", tiny_checkpoint(tmp / "m.safetensors"),
                "-q", "--out", out)  # fmt: skip
    return r, paths, out


@pytest.mark.parametrize("kind", ODD_IMAGES)
def test_odd_images_are_segmented_at_their_shown_size(kind, odd_run):
    r, paths, out = odd_run
    # an untrained model on flat or odd pictures: warnings (uniform, unsure), nothing else
    others = [line for line in r.err.splitlines() if ": warning: " not in line]
    assert r.code == 0 and not others, r.err
    path, (h, w) = paths[kind], ODD_IMAGES[kind][1]
    stem = path.name.rsplit(".", 1)[0]
    labels = np.array(Image.open(out / f"{stem}_labels.png"))
    assert labels.shape == (h, w)
    stats = json.loads((out / f"{stem}_stats.json").read_text())
    assert stats["image"] == str(path) and sum(c["pixels"] for c in stats["classes"]) == h * w


def _bad_models(segmenter, classifier):
    return bad_models(segmenter, classifier, "a classification model, not a segmentation model")


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_a_bad_model_stops_it_before_anything_is_written(
    kind, cli, segmenter, classifier, tmp_path
):
    make, says = _bad_models(segmenter, classifier)[kind]
    (tmp_path / "m").mkdir()
    model = make(tmp_path / "m")
    out = tmp_path / "out"
    r = segment(cli, model, good_image(tmp_path), "--out", out)
    refused(r, str(model), says)
    assert not out.exists()
    assert not (tmp_path / "m" / "PWNED").exists()  # the pickle was not run


def test_out_is_an_existing_file(cli, segmenter, tmp_path):
    (tmp_path / "taken").write_text("mine")
    r = segment(cli, segmenter, good_image(tmp_path), "--out", tmp_path / "taken")
    refused(r, "taken", "exists and is not a folder")
    r = segment(cli, segmenter, good_image(tmp_path), "--out", tmp_path / "taken" / "sub")
    refused(r, "taken", "exists and is not a folder")
    assert (tmp_path / "taken").read_text() == "mine"


def test_out_folder_not_writable(cli, segmenter, tmp_path, read_only_folder):
    r = segment(cli, segmenter, good_image(tmp_path), "--out", read_only_folder / "maps")
    refused(r, str(read_only_folder), "cannot write in")
    assert leftovers(read_only_folder) == []


@pytest.mark.parametrize("probabilities", [False, True])
def test_full_disk(cli, segmenter, tmp_path, full_disk, probabilities):
    """Every image fails in one line; not one file, whole or partial or temporary, is left."""
    inputs = tmp_path / "in"
    for i in range(2):
        good_image(inputs, f"g{i}.png")
    extra = ["--save-probabilities"] if probabilities else []
    r = segment(cli, segmenter, inputs, "--out", full_disk, *extra)
    assert r.code == 1 and "Traceback" not in r.err, r.err
    for i in range(2):
        (line,) = [x for x in r.error_lines if f"g{i}_" in x]
        assert "No space left on device" in line, line
    assert leftovers(full_disk) == []


@pytest.mark.parametrize("when", ["full before", "full while writing"])
def test_full_disk_for_a_georeferenced_raster(cli, segmenter, tmp_path, small_disk, when):
    """A real full disk (a 48 KiB tmpfs) under a GeoTIFF's outputs, full from the start or
    filling up while the label GeoTIFF is written (its uncompressed tiles alone are larger
    than the disk): one line naming the raster and the problem, exit 1, and not one file,
    whole, partial or temporary, left behind."""
    pytest.importorskip("rasterio")
    from ..geo_helpers import scene, write_raster

    photo, _ = scene(320, 320)
    raster = write_raster(tmp_path / "ortho.tif", photo)
    out = small_disk / "out"
    out.mkdir()
    if when == "full before":
        fill(small_disk)
    r = segment(cli, segmenter, raster, "--out", out, "--vector", "--confidence")
    assert r.code == 1 and "Traceback" not in r.err, r.err
    (line,) = r.error_lines
    assert "ortho" in line and "No space left on device" in line, line
    assert leftovers(out) == []


def test_same_file_names_from_different_folders_get_distinct_outputs(cli, segmenter, tmp_path):
    """a/x.jpg and b/x.jpg (and x.jpg beside x.png) no longer overwrite each other's outputs;
    the names are those the README documents, whatever the order of the inputs."""
    for folder, size in (("a", (40, 48)), ("b", (24, 56))):
        Image.fromarray(np.full((*size, 3), 100, np.uint8)).save(tmp_path / f"{folder}_x.jpg")
        (tmp_path / folder).mkdir()
        (tmp_path / f"{folder}_x.jpg").rename(tmp_path / folder / "x.jpg")
    Image.new("RGB", (30, 20)).save(tmp_path / "a" / "x.png")
    out = tmp_path / "out"
    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "a" / "x.png"]
    r = segment(cli, segmenter, *inputs, "--out", out)
    assert r.code == 0, r.err
    shapes = {
        name: np.array(Image.open(out / f"{name}_labels.png")).shape
        for name in ("a/x.jpg", "b/x", "a/x.png")
    }
    assert shapes == {"a/x.jpg": (40, 48), "b/x": (24, 56), "a/x.png": (20, 30)}
    # the same names from folders given as inputs, in the other order, with --overwrite
    r = segment(cli, segmenter, tmp_path / "b", tmp_path / "a", "--out", out, "--overwrite")
    assert r.code == 0, r.err
    assert sorted(leftovers(out)) == sorted(
        f"{n}{s}" for n in ("a/x.jpg", "b/x", "a/x.png") for s in SUFFIXES
    )


def test_empty_and_missing_inputs(cli, segmenter, tmp_path):
    (tmp_path / "empty").mkdir()
    r = segment(cli, segmenter, tmp_path / "empty", "--out", tmp_path / "o")
    refused(r, "empty", "no images found")
    r = segment(cli, segmenter, tmp_path / "nothing.jpg", "--out", tmp_path / "o")
    refused(r, "nothing.jpg", "no such file or folder")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("when", ["full before", "full while writing"])
def test_full_disk_for_a_streamed_picture(cli, segmenter, tmp_path, small_disk, monkeypatch, when):
    """A big plain picture streamed (jobs/picture.py) onto a full disk, or one that
    fills up with its scratch copy: one line naming an output and the problem, nothing left."""
    pytest.importorskip("rasterio")
    monkeypatch.setenv("AERIALSEG_STREAM_PIXELS", "0")  # this small picture counts as big
    rng = np.random.default_rng(0)  # noise: the scratch copy cannot compress below the disk
    Image.fromarray(rng.integers(0, 256, (160, 200, 3), np.uint8)).save(tmp_path / "big.png")
    out = small_disk / "out"
    out.mkdir()
    if when == "full before":
        fill(small_disk)
    r = segment(cli, segmenter, tmp_path / "big.png", "--out", out)
    assert r.code == 1 and "Traceback" not in r.err, r.err
    (line,) = r.error_lines
    assert "big_" in line and "No space left on device" in line, line
    assert leftovers(out) == []
