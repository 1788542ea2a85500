"""The app's open, model and save paths, and ``aerialseg capture``, against the corpus.

The window runs every file operation as a job on its worker thread and shows the job's
error in its status line (and on stderr); these tests submit the same jobs to the same
:class:`~aerialseg.app.worker.Worker` without a window. ``capture`` runs in-process on a
private Xvfb screen where it needs one.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from aerialseg.app.sources import is_raster, read_picture
from aerialseg.app.worker import Worker
from aerialseg.classes import DUBAI
from aerialseg.inference.segmenter import load_segmenter
from aerialseg.jobs.save import save_result

from .cases import BAD_IMAGES, MODEL_KINDS, ODD_IMAGES, bad_models
from .conftest import leftovers, refused


def run_job(job) -> tuple[str, object]:
    """('done', value) or ('error', the message the window would show), from the worker."""
    worker, got = Worker(), []
    worker.submit("job", job, lambda v: got.append(("done", v)), lambda m: got.append(("error", m)))
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        worker.poll()  # what the window's Tk loop does every few ms
        time.sleep(0.005)
    assert got, "the job never finished"
    return got[0]


def one_line(message: str, name: str, says: str) -> None:
    assert "\n" not in message and name in message, message
    assert says.lower() in message.lower(), (says, message)
    assert "Error:" not in message  # an AerialSegError, not a bug shown as 'TypeError: ...'


def open_job(path):
    """What Open image… runs: the picture, or a raster through GDAL where rasterio is."""
    return lambda: read_picture(path)[0]


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_open_image_refuses_bad_files(kind, tmp_path):
    make, says = BAD_IMAGES[kind]
    path = make(tmp_path)
    status, message = run_job(open_job(path))
    assert status == "error"
    if is_raster(path):  # GDAL's reader: "cannot read raster (GDAL's reason)"
        says = says.replace("cannot read image", "cannot read")
    one_line(message, str(path), says)


@pytest.mark.parametrize("kind", ODD_IMAGES)
def test_open_image_takes_odd_files(kind, tmp_path):
    make, shape = ODD_IMAGES[kind]
    path = make(tmp_path)
    status, rgb = run_job(open_job(path))
    assert status == "done" and rgb.shape == (*shape, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_model_dialog_refuses_bad_models(kind, segmenter, classifier, tmp_path):
    make, says = bad_models(segmenter, classifier, "a classification model, not a segmentation")[
        kind
    ]
    path = make(tmp_path)
    status, message = run_job(lambda: load_segmenter(path))
    assert status == "error"
    one_line(message, str(path), says)
    assert not (tmp_path / "PWNED").exists()


def save(folder):
    rgb = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    labels = np.zeros((24, 32), np.uint8)
    return lambda: save_result(folder, "capture-x", rgb, labels, DUBAI, "tiny")


def test_save_into_a_file_a_read_only_folder_or_a_full_disk(tmp_path, read_only_folder, full_disk):
    (tmp_path / "taken").write_text("mine")
    for folder, says in (
        (tmp_path / "taken", "cannot write to"),
        (read_only_folder, "Read-only file system"),
        (full_disk, "No space left on device"),
    ):
        status, message = run_job(save(folder))
        assert status == "error", folder
        one_line(message, str(folder), says)
    assert (tmp_path / "taken").read_text() == "mine"
    assert leftovers(read_only_folder) == [] and leftovers(full_disk) == []


# ---------------------------------------------------------------------------- capture


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_capture_refuses_bad_models_before_grabbing(kind, cli, segmenter, classifier, tmp_path):
    make, says = bad_models(segmenter, classifier, "a classification model, not a segmentation")[
        kind
    ]
    (tmp_path / "m").mkdir()
    model = make(tmp_path / "m")
    out = tmp_path / "out"
    r = cli("capture", "--region", "0,0,64,64", "--out", out, "--model", model)
    refused(r, str(model), says)
    assert not out.exists() and not (tmp_path / "m" / "PWNED").exists()


def test_capture_refuses_outputs_it_cannot_write_before_grabbing(
    cli, segmenter, tmp_path, read_only_folder
):
    (tmp_path / "taken").write_text("mine")
    for out, says in ((tmp_path / "taken", "exists and is not a folder"),
                      (read_only_folder / "caps", "cannot write in")):  # fmt: skip
        r = cli("capture", "--region", "0,0,64,64", "--out", out, "--model", segmenter)
        refused(r, str(out), says)


def test_capture_onto_a_full_disk(cli, segmenter, full_disk, monkeypatch):
    from aerialseg.app.virtual_screen import VirtualScreen, missing_tools

    if missing_tools():
        pytest.skip(missing_tools())
    screen = VirtualScreen(320, 240)
    try:
        monkeypatch.setenv("DISPLAY", screen.env["DISPLAY"])
        r = cli("capture", "--region", "0,0,64,48", "--out", full_disk, "--model", segmenter)
    finally:
        screen.close()
    refused(r, str(full_disk), "No space left on device")
    assert leftovers(full_disk) == []
