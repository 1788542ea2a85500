"""``aerialseg gui --classes FILE`` and Improve model's step-counted fine-tune, through the
real window under Xvfb: the maps, legend, statistics and painting follow the table, a class
the model lacks is painted and then learnt, and a fine-tune cut short by its clock guard says
so in the status line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from PIL import Image

from aerialseg.classes import parse_hex
from aerialseg.config import FinetuneConfig

from .test_correct_mode import drag, replay, view_of

# the model's land-cover classes in another order and colours, Unlabeled left out, and a
# class it does not know
TABLE = {
    "classes": [
        {"name": "water", "color": "#0000FF"},
        {"name": "Road", "color": "#808080"},
        {"name": "Building", "color": "#FF0000"},
        {"name": "Land", "color": "#AA8844"},
        {"name": "Vegetation", "color": "#00AA00"},
        {"name": "Solar", "color": "#FF00FF"},
    ]
}
NAMES = [c["name"] for c in TABLE["classes"]]


def _table(tmp_path, d=TABLE):
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_a_table_leaving_out_a_class_of_the_model_is_refused_as_segment_refuses_it(
    tiny_model, known_image, tmp_path, capsys
):
    """The gui refuses what segment refuses, in the same words, before any window: a table
    that drops a class of the model would silently give its pixels to another."""
    from aerialseg.cli import main

    d = {"classes": [c for c in TABLE["classes"] if c["name"] not in ("Road", "Solar")]}
    table = _table(tmp_path, d)
    lines = []
    for argv in (
        ["gui", "--model", str(tiny_model), "--classes", str(table)],
        ["segment", str(known_image[1]), "--out", str(tmp_path / "o"), "--model",
         str(tiny_model), "--classes", str(table), "-q"],
    ):  # fmt: skip
        assert main(argv) == 2
        lines.append(capsys.readouterr().err.strip())
    assert lines[0] == lines[1] and "\n" not in lines[0], lines
    assert lines[0].startswith(f"aerialseg: error: {table}: leaves out the model's class Road;")


def test_the_window_follows_the_table_and_improve_teaches_its_new_class(
    screen, tiny_model, known_image, tmp_path
):
    from aerialseg.models.checkpoint import load_checkpoint

    photo, path = known_image  # 400 x 300
    corrections, saved = tmp_path / "corrections", tmp_path / "saved"
    screen.start_app(
        "--model", tiny_model, "--classes", _table(tmp_path), "--corrections", corrections,
        "--autosave", saved, "--improve-steps", 3, path,
    )  # fmt: skip
    _, shown = screen.wait_for("result shown 400x300")
    assert "unlearnt=Solar" in shown, screen.log  # the legend says "not learnt"
    screen.wait_for("saved ")
    (stats,) = saved.glob("known*_stats.json")  # the statistics are the table's
    rows = json.loads(stats.read_text())["classes"]
    assert [r["class"] for r in rows] == NAMES and rows[5]["pixels"] == 0
    mask = np.array(Image.open(next(saved.glob("known*_mask.png"))).convert("RGB"))
    colours = {tuple(map(int, c)) for c in np.unique(mask.reshape(-1, 3), axis=0)}
    assert colours <= {parse_hex(c["color"]) for c in TABLE["classes"]}, colours

    screen.key_over_app("6")  # the new class, offered like the others (and Correct mode on)
    _, message = screen.wait_for("correct mode on")
    screen.wait_for("class 5 Solar")
    assert len(message.split("legend=")[1].split(";")) == len(NAMES)  # one swatch per class
    mx, my, left, top, sx, sy = view_of(message)

    def at(x, y):
        return round(mx + left + x * sx), round(my + top + y * sy)

    drag(screen, [at(40, 40), at(200, 120)])
    screen.wait_for("stroke done")
    want, _ = replay(screen.log, (300, 400))
    assert (want == 5).any()
    screen.key_over_app("i")
    screen.wait_for("improve started")
    label = np.array(Image.open(corrections / "labels" / "known.png"))
    assert np.array_equal(label, want)  # indices of the table: 5 is Solar
    _, finished = screen.wait_for("improve finished", timeout=180)
    assert "cut_short=None" in finished, screen.log
    _, shown = screen.wait_for("result shown 400x300", timeout=120)
    assert "unlearnt=" not in shown, screen.log  # the improved model knows Solar
    out = re.search(r"out=(\S+\.safetensors)", finished)[1]
    _, classes, meta = load_checkpoint(out)
    assert list(classes.names) == NAMES  # Improve model learnt the table
    record = meta["finetune"]
    assert record["steps"] == 3 and record["cut_short"] is None
    # no --improve-minutes: the fine-tune's own guard, not a budget of the app's
    assert record["config"]["minutes"] == FinetuneConfig().minutes
    _, status = screen.wait_for("status: Improved: ")
    assert "guard" not in status


@pytest.mark.slow  # a fine-tune in the app, ~10 s: keeps `make test` under 5 min
def test_a_fine_tune_cut_short_by_its_guard_says_so_in_the_status_line(
    screen, tiny_model, known_image, tmp_path
):
    _, path = known_image
    screen.start_app(
        "--model", tiny_model, "--corrections", tmp_path / "c", "--improve-steps", 100000,
        "--improve-minutes", 0.1, path,
    )  # fmt: skip
    screen.wait_for("result shown 400x300")
    screen.key_over_app("2")
    _, message = screen.wait_for("correct mode on")
    mx, my, left, top, sx, sy = view_of(message)
    drag(screen, [(mx + left + 20, my + top + 20), (mx + left + 120, my + top + 60)])
    screen.wait_for("stroke done")
    screen.key_over_app("i")
    _, finished = screen.wait_for("improve finished", timeout=180)
    cut = re.search(r"cut_short='(.*)'", finished)[1]
    assert re.fullmatch(r"stopped by the 0\.1-minute guard after \d+ of 100000 steps", cut), cut
    _, warning = screen.wait_for("warning: Improved: ", timeout=120)
    assert warning.endswith(f"% changed — {cut} (raise --improve-minutes)"), warning
