"""Shared fixtures: tiny synthetic datasets made in code, and the real dataset when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import make_scene, tiny_checkpoint, write_pair

REAL_DATA = Path(
    os.environ.get("AERIALSEG_DATA", Path(__file__).parents[1] / "../shared/datasets/dubai-aerial")
)


@pytest.fixture(scope="session", autouse=True)
def _cache_in_tmp(tmp_path_factory):
    """Whatever the tests build and cache (int8 models) goes to a temporary folder, not the
    user's ~/.cache; set in the environment so CLI subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """Kaggle layout: 2 tiles x 3 images of 80x96 (spaces in folder names, palette masks too)."""
    root = tmp_path / "dubai"
    for t in (1, 2):
        for i in range(1, 4):
            photo, labels = make_scene(80, 96, seed=10 * t + i)
            write_pair(root / f"Tile {t}", f"image_part_{i:03d}", photo, labels, palette=i == 2)
    return root


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "Tile 1" / "images").is_dir():
        pytest.skip(f"real dataset not found at {REAL_DATA} (set AERIALSEG_DATA)")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny untrained checkpoint file, shared by the tests that only need one that loads;
    seeded, so that what it predicts does not hang on which tests drew random numbers first."""
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", seed=0)


@pytest.fixture(scope="session")
def onnx_default(tmp_path_factory) -> tuple[Path, str]:
    """`aerialseg export` of the bundled model to ONNX (once: an export takes seconds), and
    what the command printed."""
    import contextlib
    import io

    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    from aerialseg.cli import main

    path = tmp_path_factory.mktemp("onnx") / "default.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--out", str(path)]) == 0
    return path, printed.getvalue()
