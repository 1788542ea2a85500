"""The app window, run as ``aerialseg gui`` under Xvfb: responsive while predicting, errors
shown, and without a display one clear line. Also the atomic saving behind Save…"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from aerialseg.classes import DUBAI
from aerialseg.errors import AerialSegError
from aerialseg.inference.outputs import save_result, stats_line, timestamped_stem

from ..helpers import make_scene


def test_window_stays_responsive_while_predicting(screen, tiny_model, tmp_path):
    photo, _ = make_scene(256, 256, seed=3)
    big = tmp_path / "big.png"
    Image.fromarray(photo).save(big)
    screen.start_app("--model", tiny_model, "--tta", big)
    started, _ = screen.wait_for("segmenting ")
    screen.key_over_app("c")  # a second capture while the first is being segmented
    refused, _ = screen.wait_for("refused: busy with Reading and segmenting big.png")
    shown, message = screen.wait_for("result shown 256x256")
    assert started < refused < shown, screen.log  # handled during the prediction, not after
    assert float(message.split("segment_s=")[1]) > 0, screen.log

    screen.key_over_app("c")  # now free: a capture starts, and Esc cancels it
    screen.wait_for("overlay shown")
    screen.xdotool("key", "Escape")
    screen.wait_for("capture cancelled")


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


# Save… writes through inference.outputs.save_result


def test_save_result_writes_a_complete_set_and_never_overwrites(tmp_path):
    rgb, labels = make_scene(40, 60, seed=1)
    stem = timestamped_stem("my capture!", when=0)
    assert stem == "my-capture--" + time.strftime("%Y%m%d-%H%M%S", time.localtime(0))
    first = save_result(tmp_path, stem, rgb, labels, DUBAI, "tiny", {"tta": False})
    second = save_result(tmp_path, stem, rgb, labels, DUBAI, "tiny")
    assert first["input"].name == f"{stem}_input.png"
    assert second["input"].name == f"{stem}-2_input.png"
    for k in ("input", "mask", "overlay", "labels", "stats_json"):
        assert first[k].stat().st_size > 0, k
    assert np.array_equal(np.array(Image.open(first["input"])), rgb)
    assert np.array_equal(np.array(Image.open(first["labels"])), labels)
    assert np.array_equal(np.array(Image.open(first["mask"])), DUBAI.colorize(labels))
    info = json.loads(first["stats_json"].read_text())
    assert info["model"] == "tiny" and info["width"] == 60 and info["height"] == 40
    assert sum(r["pixels"] for r in info["classes"]) == 40 * 60
    assert stats_line(first["stats_json"]).count("%") == len(np.unique(labels))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in [*first.values(), *second.values()]
    )  # no staging folder left behind


def test_save_result_into_an_unwritable_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rgb, labels = make_scene(20, 20, seed=2)
    with pytest.raises(AerialSegError, match="cannot write to"):
        save_result(blocker / "out", "x", rgb, labels, DUBAI, "tiny")
