"""Correct mode, Improve model and Save model…, driven under Xvfb with xdotool like a user:
a real mouse drag paints, the saved label PNG holds exactly the painted pixels, the window
answers (and paints) while the model fine-tunes, and the saved model records what it learned."""

from __future__ import annotations

import ast
import re
import time

import numpy as np
import pytest
from PIL import Image

from aerialseg.app.correct import capsule


def view_of(message: str):
    """The map canvas's screen position and the image's placement, from the app's log."""
    mx, my = map(int, re.search(r"map_at=(-?\d+),(-?\d+)", message).groups())
    left, top, sx, sy = ast.literal_eval(re.search(r"placed=(\(.*?\))", message).group(1))
    return mx, my, left, top, sx, sy


def drag(screen, points, button=1):
    """Press at the first point, move through the others (each motion handled before the
    next: Tk merges motion events that queue up), release at the last."""
    args = ["mousemove", *points[0], "mousedown", button]
    for p in points[1:]:
        args += ["sleep", 0.15, "mousemove", *p]
    screen.xdotool(*args, "sleep", 0.15, "mouseup", button)


def replay(log: list[str], shape) -> tuple[np.ndarray, list]:
    """The labels the app's logged brush segments paint (class, or None: erase), replayed
    with the unit-tested geometry, and the image points the segments ended at."""
    labels = np.full(shape, 255, np.uint8)
    ends = []
    for line in log:
        m = re.search(r"paint value=(\w+) radius=(\S+) from=(\(.*?\)) to=(\(.*?\))", line)
        if m:
            value = 255 if m[1] == "None" else int(m[1])
            p0, p1 = ast.literal_eval(m[3]), ast.literal_eval(m[4])
            box, mask = capsule(shape, p0, p1, float(m[2]))
            labels[box][mask] = value
            ends.append(p1)
    return labels, ends


@pytest.mark.slow  # a fine-tune in the app, ~18 s: keeps `make test` under 5 min
def test_correct_improve_and_save_the_model(screen, tiny_model, known_image, tmp_path):
    from aerialseg.models.checkpoint import load_checkpoint

    photo, path = known_image  # 400 x 300
    corrections = tmp_path / "corrections"
    screen.start_app(
        "--model", tiny_model, "--corrections", corrections, "--improve-minutes", 0.15, path
    )
    screen.wait_for("result shown 400x300")
    screen.key_over_app("r")
    _, message = screen.wait_for("correct mode on")
    view = view_of(message)
    mx, my, left, top, sx, sy = view

    def at(x, y):  # image pixel -> screen point
        return round(mx + left + x * sx), round(my + top + y * sy)

    screen.key_over_app("4")  # Vegetation, by key
    screen.wait_for("class 3 Vegetation")
    stroke = [at(60, 80), at(150, 95), at(210, 170)]
    drag(screen, stroke)
    screen.wait_for("stroke done")

    # Water by clicking the legend's swatch, a second stroke, then undo and redo it
    legend = [tuple(map(int, p.split(","))) for p in message.split("legend=")[1].split(";")]
    screen.xdotool("mousemove", *legend[4], "click", 1)
    screen.wait_for("class 4 Water")
    water = [at(300, 40), at(330, 200)]
    drag(screen, water)
    screen.wait_for("stroke done")
    screen.key_over_app("ctrl+z")
    screen.wait_for("undo")
    screen.key_over_app("ctrl+y")
    screen.wait_for("redo")
    # a right drag erases across the first stroke
    eraser = [at(120, 60), at(120, 130)]
    drag(screen, eraser, button=3)
    _, done = screen.wait_for("stroke done")
    want, ends = replay(screen.log, (300, 400))
    # the brush went where the mouse did: each segment ends at the pointer, within the pixel
    # rounding of the screen (the window may shift by a pixel as its status line changes)
    mouse = [((x - mx - left) / sx, (y - my - top) / sy) for x, y in stroke + water + eraser]
    assert len(ends) == len(mouse) and np.abs(np.subtract(ends, mouse)).max() < 1.5, screen.log
    assert (
        (want == 3).any()
        and (want == 4).any()
        and int(done.split("labelled=")[1]) == (np.count_nonzero(want != 255))
    ), screen.log

    screen.key_over_app("i")  # Improve model: saves the corrections, fine-tunes in a child
    screen.wait_for("improve started")
    label = np.array(Image.open(corrections / "labels" / "known.png"))
    assert label.ndim == 2 and np.array_equal(label, want)  # exactly the painted pixels
    assert np.array_equal(np.array(Image.open(corrections / "images" / "known.png")), photo)

    # the window answers while the model learns: a class chosen and a stroke painted
    screen.wait_for("improve progress", timeout=120)
    screen.key_over_app("2")
    chosen, _ = screen.wait_for("class 1 Land")
    drag(screen, [at(30, 250), at(90, 260)])
    stroked, _ = screen.wait_for("stroke done")
    finished, message = screen.wait_for("improve finished", timeout=180)
    assert chosen < stroked < finished, screen.log
    screen.wait_for("improved shown", timeout=120)
    screen.key_over_app("b")
    screen.wait_for("showing before")
    screen.key_over_app("b")
    screen.wait_for("showing after")

    # Save model… (Shift+S): the file dialog, typed into as a user would
    saved = tmp_path / "mine.safetensors"
    screen.key_over_app("S")
    time.sleep(1.5)  # the dialog opens centred on the window
    screen.xdotool("mousemove", 640, 380, "key", "ctrl+slash")  # select all (Tk entries)
    screen.xdotool("type", "--delay", 20, str(saved))
    screen.xdotool("key", "Return")
    screen.wait_for("model saved")
    _, classes, meta = load_checkpoint(saved)
    record = meta["finetune"]
    assert record["labelled_pixels"] == np.count_nonzero(want != 255)
    assert [i["image"] for i in record["images"]] == ["known"]
    assert record["parent"]["path"] == str(tiny_model.resolve())

    # Model… (m) is a menu: the bundled model is its second entry, chosen by keys
    screen.key_over_app("m")
    time.sleep(0.5)
    screen.xdotool("key", "Down", "Down", "Return")
    screen.wait_for("status: Loading model (bundled)…")


def test_a_corrections_folder_that_cannot_be_one_is_one_line(tiny_model, tmp_path, capsys):
    from aerialseg.cli import main

    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    assert main(["gui", "--model", str(tiny_model), "--corrections", str(afile / "c")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aerialseg: error: --corrections "), lines
    assert "notes.txt" in lines[0]


def test_corrections_accumulate_and_closing_saves_them(screen, tiny_model, tmp_path):
    """Two images painted: Improve model saves (and learns from) both; a stroke painted while
    it fine-tunes is saved by Ctrl+Q, which also stops the fine-tune."""
    from ..helpers import make_scene

    for i, name in enumerate(("one", "two")):
        Image.fromarray(make_scene(120, 160, seed=i)[0]).save(tmp_path / f"{name}.png")
    corrections = tmp_path / "corrections"
    screen.start_app(
        "--model", tiny_model, "--corrections", corrections, "--improve-minutes", 5,
        tmp_path / "one.png",
    )  # fmt: skip

    def stroke(y):
        screen.key_over_app("2")
        _, message = screen.wait_for("correct mode on")
        mx, my, left, top, sx, sy = view_of(message)
        drag(screen, [(mx + left + 20, my + top + y), (mx + left + 120, my + top + y + 40)])
        screen.wait_for("stroke done")
        screen.key_over_app("r")  # Correct mode off (the next "2" turns it on again)
        screen.wait_for("correct mode off")

    screen.wait_for("result shown 160x120")
    stroke(20)
    screen.key_over_app("o")  # Open image…: the file dialog, typed into
    time.sleep(1.5)
    screen.xdotool("mousemove", 640, 380, "key", "ctrl+slash")
    screen.xdotool("type", "--delay", 20, str(tmp_path / "two.png"))
    screen.xdotool("key", "Return")
    screen.wait_for("result shown 160x120")
    stroke(20)
    screen.key_over_app("i")
    _, message = screen.wait_for("improve started")
    assert "saved_images=2" in message
    starts = [i for i, line in enumerate(screen.log) if "correct mode on" in line]
    one = replay(screen.log[starts[0] : starts[1]], (120, 160))[0]
    two = replay(screen.log[starts[1] :], (120, 160))[0]
    for name, want in (("one", one), ("two", two)):
        assert (want == 1).any()
        assert np.array_equal(np.array(Image.open(corrections / "labels" / f"{name}.png")), want)

    screen.wait_for("improve progress", timeout=120)
    stroke(60)  # on image two, during the fine-tune
    two = replay(screen.log[starts[1] :], (120, 160))[0]
    screen.key_over_app("ctrl+q")
    screen.wait_for("corrections saved on closing")
    assert screen.app.wait(30) == 0
    assert np.array_equal(np.array(Image.open(corrections / "labels" / "two.png")), two)
    assert np.array_equal(np.array(Image.open(corrections / "labels" / "one.png")), one)
