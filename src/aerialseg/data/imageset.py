"""An in-memory set of equal-sized RGB images with class labels (what classifiers train on)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..classes import ClassTable


@dataclass
class ImageSet:
    """``images`` (N, S, S, 3) uint8 and ``labels`` (N,) int64 indices into ``classes``."""

    images: np.ndarray
    labels: np.ndarray
    classes: ClassTable
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> ImageSet:
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(
            self.images[idx], self.labels[idx], self.classes, [self.ids[i] for i in idx]
        )

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))


def class_table(names: Sequence[str]) -> ClassTable:
    """A table for classes that have no mask colours: distinct colours for the plots."""
    colors, seen = [], set()
    for i in range(len(names)):
        h = (i * 0.618034) % 1.0  # golden-ratio hues spread any number of classes evenly
        rgb = tuple(int(round(255 * v)) for v in colorsys.hsv_to_rgb(h, 0.65, 0.6 + 0.3 * (i % 2)))
        while rgb in seen:  # rounding can collide for hundreds of classes
            rgb = (rgb[0], rgb[1], (rgb[2] + 1) % 256)
        seen.add(rgb)
        colors.append(rgb)
    return ClassTable(tuple(names), tuple(colors))


def fit_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` x ``size``."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = rgb[y : y + s, x : x + s]
    if s == size:
        return np.ascontiguousarray(crop)
    return np.array(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))


def concat(sets: Sequence[ImageSet]) -> ImageSet:
    return ImageSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.labels for s in sets]),
        sets[0].classes,
        [i for s in sets for i in s.ids],
    )
