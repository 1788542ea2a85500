"""Training augmentations beyond flips: zoom and colour.

Why: a model trained on one city's orthophotos at one ground resolution sees every building
at one size and every roof in one light. Imagery from another camera, day or altitude differs
in exactly those ways (the robustness suite, ``benchmarks/robustness.py``, measures it), so the
training patches are shown at random scales and under random colour shifts of the same kinds.
All draws come from the caller's generator, so a run stays reproducible and resumable.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def zoomed_crop(
    image: np.ndarray, labels: np.ndarray, size: int, zoom: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` x ``size`` patch seen at a random scale between 1/zoom and zoom
    (log-uniform): a crop of side size/scale resampled to ``size`` — bilinear (antialiased when
    shrinking) for the image, nearest for the labels so no label is invented."""
    h, w = labels.shape
    scale = float(np.exp(rng.uniform(-np.log(zoom), np.log(zoom)))) if zoom > 1 else 1.0
    side = min(max(8, round(size / scale)), h, w)  # small images: as much zoom out as they allow
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    img, lab = image[y : y + side, x : x + side], labels[y : y + side, x : x + side]
    if side != size:
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
        lab = np.asarray(Image.fromarray(lab).resize((size, size), Image.Resampling.NEAREST))
    return img, lab


def colour(images: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random colour and quality shifts of a uint8 batch (N, H, W, 3), per patch: white balance
    (red and blue gains +-15 %), saturation +-30 %, gamma x/÷ 1.3, and with probability 0.2
    each a Gaussian blur (radius 0.5-1.5) or JPEG compression (quality 30-90); ``strength``
    scales the ranges and probabilities (0: unchanged)."""
    if strength <= 0:
        return images
    n = len(images)
    x = images.astype(np.float32) / 255
    gains = np.ones((n, 1, 1, 3), np.float32)
    gains[:, 0, 0, [0, 2]] = rng.uniform(1 - 0.15 * strength, 1 + 0.15 * strength, (n, 2))
    x *= gains
    grey = x.mean(axis=3, keepdims=True)
    sat = rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength, (n, 1, 1, 1)).astype(np.float32)
    x = grey + (x - grey) * sat
    g = np.exp(rng.uniform(-1, 1, (n, 1, 1, 1)) * np.log(1 + 0.3 * strength)).astype(np.float32)
    x = np.clip(x, 0, 1) ** g
    out = (x * 255 + 0.5).astype(np.uint8)
    p = min(0.2 * strength, 1.0)
    for i in range(n):
        # drawn for every patch, used or not: the same number of draws whatever happens
        blur, jpeg = rng.random(2) < p
        radius, quality = rng.uniform(0.5, 1.5), int(rng.integers(30, 91))
        if not (blur or jpeg):
            continue
        im = Image.fromarray(out[i])
        if blur:
            im = im.filter(ImageFilter.GaussianBlur(radius))
        if jpeg:
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=quality)
            im = Image.open(buf)
        out[i] = np.asarray(im.convert("RGB"))
    return out
