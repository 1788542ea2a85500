"""The app window, run as ``aerialseg gui`` under Xvfb: responsive while predicting, errors
shown, and without a display one clear line. Also the atomic saving behind Save…"""

from __future__ import annotations

from PIL import Image

from ..helpers import make_scene


def test_window_stays_responsive_while_predicting(screen, tiny_model, tmp_path):
    photo, _ = make_scene(256, 256, seed=3)
    big = tmp_path / "big.png"
    Image.fromarray(photo).save(big)
    screen.start_app("--model", tiny_model, "--tta", big)
    _, ready = screen.wait_for("ready model=")
    assert float(ready.split("stall_max_ms=")[1]) >= 0, screen.log  # loading's own stall
    started, _ = screen.wait_for("segmenting ")
    screen.key_over_app("c")  # a second capture while the first is being segmented
    refused, _ = screen.wait_for("refused: busy with Reading and segmenting big.png")
    shown, message = screen.wait_for("result shown 256x256")
    assert started < refused < shown, screen.log  # handled during the prediction, not after
    fields = dict(f.split("=") for f in message.split() if "=" in f)
    assert float(fields["segment_s"]) > 0, screen.log
    # the longest event-loop stall is logged with each result; how long it is depends on the
    # machine's load (1-13 s seen on a CPU shared by six jobs), so it is measured by
    # benchmarks/gui_latency.py, not bounded here: the refused capture above is the proof that
    # the loop kept turning while the worker predicted
    assert float(fields["stall_max_ms"]) >= 0, screen.log

    screen.key_over_app("c")  # now free: a capture starts, and Esc cancels it
    screen.wait_for("overlay shown")
    screen.xdotool("key", "Escape")
    screen.wait_for("capture cancelled")


def test_a_blank_picture_is_segmented_with_a_warning(screen, tiny_model, tmp_path):
    import json

    Image.new("RGB", (120, 90)).save(tmp_path / "black.png")  # a black screen capture
    out = tmp_path / "saved"
    screen.start_app("--model", tiny_model, "--autosave", out, tmp_path / "black.png")
    _, message = screen.wait_for("warning: Segmented ")
    assert "almost uniform" in message, screen.log
    screen.wait_for("result shown 120x90")  # the map is still shown
    screen.wait_for("saved ")  # ...and saved, with the warning in its statistics
    (stats,) = out.glob("black*_stats.json")
    assert "almost uniform" in json.loads(stats.read_text())["warning"]


def test_a_bad_model_is_reported_in_the_window(screen, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a model")
    screen.start_app("--model", bad)
    _, message = screen.wait_for("error: ")
    assert "bad.safetensors" in message
    screen.key_over_app("c")  # no model: the capture is refused with a hint, not attempted
    screen.wait_for("error: No model loaded: choose one with Model…")


def test_without_a_display_both_commands_fail_in_one_line(
    tiny_model, tmp_path, monkeypatch, capsys
):
    from aerialseg.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for args in (
        ["gui", "--model", tiny_model],
        ["capture", "--region", "0,0,64,64", "--out", tmp_path, "--model", tiny_model],
    ):
        assert main(list(map(str, args))) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aerialseg: error: "), lines
        assert "display" in lines[0].lower()
    assert not any(tmp_path.iterdir())  # nothing half-written
    assert main(["gui", "--model", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such model file" in capsys.readouterr().err


# Save… writes through jobs.save.save_result


def test_a_geotiff_opens_and_saves_with_its_georeference(screen, tiny_model, tmp_path):
    """Open image… on a 4-band 16-bit GeoTIFF with a nodata border: segmented as segment
    reads it, and the saved labels GeoTIFF lands where the raster does."""
    import numpy as np
    import pytest

    rasterio = pytest.importorskip("rasterio")
    from aerialseg.app.sources import read_picture
    from aerialseg.inference.segmenter import load_model

    from .test_sources import raster_16bit

    path = raster_16bit(tmp_path / "ortho.tif", h=200, w=240)
    out = tmp_path / "saved"
    screen.start_app("--model", tiny_model, "--autosave", out, path)
    _, shown = screen.wait_for("result shown 240x200")
    assert "crs=EPSG:32640 downsampled_by=1.00" in shown, shown
    _, message = screen.wait_for("saved ")
    (tif,) = out.glob("ortho*_labels.tif")
    rgb, valid, _ = read_picture(path)
    want = load_model(tiny_model).segment(rgb)
    want[~valid] = 255
    with rasterio.open(tif) as ds, rasterio.open(path) as src:
        assert (ds.crs, ds.transform, ds.shape) == (src.crs, src.transform, src.shape)
        assert np.array_equal(ds.read(1), want)  # nodata border stays nodata (255)
    assert (out / tif.name.replace("_labels.tif", "_figure.png")).is_file()
