"""Improve model's child process (app/tuning.py): it fine-tunes as ``aerialseg finetune``
does and reports progress, a bad folder is one line, and Cancel leaves no model behind."""

from __future__ import annotations

import time

import numpy as np

from aerialseg.app.correct import Corrections
from aerialseg.app.tuning import FineTune

from ..helpers import make_scene


def wait(tune: FineTune, timeout: float = 180) -> list[tuple[float, str]]:
    seen, deadline = [], time.monotonic() + timeout
    while not tune.poll():
        seen.append((tune.fraction, tune.message))
        assert time.monotonic() < deadline, "the fine-tune did not end"
        time.sleep(0.05)
    return seen


def painted_folder(folder):
    photo, labels = make_scene(96, 128, seed=5)
    c = Corrections(6)
    e = c.entry_for(photo, "scene", "scene")
    e.painting.line((20, 20), (100, 60), 6, 3)
    e.painting.end()
    c.save(folder)
    return e.painting.labelled


def test_a_fine_tune_in_the_child_writes_the_model_and_reports_progress(tiny_model, tmp_path):
    from aerialseg.models.checkpoint import load_checkpoint

    labelled = painted_folder(tmp_path / "c")
    out = tmp_path / "new.safetensors"
    # 3 steps, with minutes to spare: on a loaded machine the set-up alone can take seconds
    tune = FineTune(tiny_model, tmp_path / "c" / "images", tmp_path / "c" / "labels", out, 5, 3)
    seen = wait(tune)
    assert tune.error is None, tune.error
    assert tune.result["labelled_pixels"] == labelled and tune.result["steps"] == 3
    fractions = [f for f, _ in seen]
    assert np.all(np.diff(fractions) >= 0)  # the bar only moves forward
    # (polled every 50 ms: not every message is seen, but a step's is)
    assert any(m.startswith("step ") and ", loss " in m for _, m in seen), seen
    assert load_checkpoint(out)[2]["finetune"]["labelled_pixels"] == labelled


def test_bad_corrections_are_one_line_and_cancel_leaves_nothing(tiny_model, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    out = tmp_path / "new.safetensors"
    tune = FineTune(tiny_model, tmp_path / "images", tmp_path / "labels", out, 0.05)
    wait(tune)
    assert tune.error and "\n" not in tune.error and "no images" in tune.error, tune.error
    assert not out.exists()

    painted_folder(tmp_path / "c")
    tune = FineTune(tiny_model, tmp_path / "c" / "images", tmp_path / "c" / "labels", out, 5)
    time.sleep(1)
    tune.cancel()
    wait(tune, timeout=30)
    assert tune.error == "cancelled" and not out.exists()
    assert not list(tmp_path.glob(".new.safetensors*"))  # no temporary file either
