"""Shared fixtures: tiny synthetic datasets made in code, and the real dataset when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aerialseg.classes import DUBAI

REAL_DATA = Path(
    os.environ.get("AERIALSEG_DATA", Path(__file__).parents[1] / "../shared/datasets/dubai-aerial")
)

# A distinct photo colour per class, so that a model can learn the synthetic task quickly.
PHOTO_COLORS = np.array(
    [[200, 60, 60], [190, 170, 120], [90, 90, 90], [40, 140, 40], [30, 60, 170], [240, 240, 240]],
    dtype=np.uint8,
)


def make_scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random layout of class rectangles: (photo RGB, labels)."""
    rng = np.random.default_rng(seed)
    labels = np.full((h, w), 1, dtype=np.uint8)
    for _ in range(8):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        labels[y : y + rng.integers(8, h // 2), x : x + rng.integers(8, w // 2)] = rng.integers(6)
    noise = rng.integers(-12, 13, size=(h, w, 3))
    photo = np.clip(PHOTO_COLORS[labels].astype(int) + noise, 0, 255).astype(np.uint8)
    return photo, labels


def write_pair(folder: Path, stem: str, photo: np.ndarray, labels: np.ndarray, palette=False):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(folder / "images" / f"{stem}.jpg", quality=95)
    mask = Image.fromarray(DUBAI.colorize(labels))
    if palette:
        mask = mask.quantize(palette=_palette_image(), dither=Image.Dither.NONE)
    mask.save(folder / "masks" / f"{stem}.png")


def _palette_image():
    pal = Image.new("P", (1, 1))
    flat = [v for c in DUBAI.colors for v in c] + [0, 0, 0]
    pal.putpalette(flat + [0] * (768 - len(flat)))
    return pal


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
