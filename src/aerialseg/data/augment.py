"""Training augmentations beyond flips: zoom, colour and ClassMix.

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

from ..classes import IGNORE_INDEX


def zoomed_crop(
    image: np.ndarray, labels: np.ndarray, size: int, zoom: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` x ``size`` patch seen at a random scale between 1/zoom and zoom
    (log-uniform): a crop of side size/scale resampled to ``size`` — bilinear (antialiased when
    shrinking) for the image, nearest for the labels so no label is invented."""
    y, x, side = crop_box(*labels.shape, size, zoom, rng)
    return resize_crop(image[y : y + side, x : x + side], labels[y : y + side, x : x + side], size)


def crop_box(h: int, w: int, size: int, zoom: float, rng: np.random.Generator):
    """The random draws of :func:`zoomed_crop` alone: (row, column, side) of the crop in an
    image of h x w (the pixels can then be read from anywhere, a file on disk too)."""
    scale = float(np.exp(rng.uniform(-np.log(zoom), np.log(zoom)))) if zoom > 1 else 1.0
    side = min(max(8, round(size / scale)), h, w)  # small images: as much zoom out as they allow
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    return y, x, side


def resize_crop(img: np.ndarray, lab: np.ndarray, size: int):
    if img.shape[0] != size:
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
        lab = np.asarray(Image.fromarray(lab).resize((size, size), Image.Resampling.NEAREST))
    return img, lab


def colour(images: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random colour and quality shifts of a uint8 batch (N, H, W, 3), per patch: white balance
    (red and blue gains +-15 %), saturation +-30 %, gamma x/÷ 1.3, and with probability 0.2
    each a Gaussian blur (radius 0.5-1.5) or JPEG compression (quality 30-90); ``strength``
    scales the ranges and probabilities (0: unchanged)."""
    return apply_colour(images, colour_draws(len(images), rng, strength))


def colour_draws(n: int, rng: np.random.Generator, strength: float) -> dict | None:
    """The random draws of :func:`colour` for n patches, in its order (None: no change)."""
    if strength <= 0:
        return None
    gains = np.ones((n, 1, 1, 3), np.float32)
    gains[:, 0, 0, [0, 2]] = rng.uniform(1 - 0.15 * strength, 1 + 0.15 * strength, (n, 2))
    sat = rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength, (n, 1, 1, 1)).astype(np.float32)
    g = np.exp(rng.uniform(-1, 1, (n, 1, 1, 1)) * np.log(1 + 0.3 * strength)).astype(np.float32)
    p = min(0.2 * strength, 1.0)
    per_patch = []
    for _ in range(n):
        # drawn for every patch, used or not: the same number of draws whatever happens
        blur, jpeg = rng.random(2) < p
        per_patch.append((blur, jpeg, rng.uniform(0.5, 1.5), int(rng.integers(30, 91))))
    return {"gains": gains, "sat": sat, "gamma": g, "per_patch": per_patch}


def apply_colour(images: np.ndarray, draws: dict | None) -> np.ndarray:
    if draws is None:
        return images
    x = images.astype(np.float32) / 255
    x *= draws["gains"]
    grey = x.mean(axis=3, keepdims=True)
    x = grey + (x - grey) * draws["sat"]
    x = np.clip(x, 0, 1) ** draws["gamma"]
    out = (x * 255 + 0.5).astype(np.uint8)
    for i, (blur, jpeg, radius, quality) in enumerate(draws["per_patch"]):
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


def class_mix(
    image: np.ndarray,
    labels: np.ndarray,
    src_image: np.ndarray,
    src_labels: np.ndarray,
    priority: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """ClassMix (Olsson et al., WACV 2021): paste the pixels of half the classes present in a
    source patch (rounded up; those with the lowest ``priority``, a random number per label
    value) over a patch, image and labels alike. The result keeps object shapes and puts
    them in new surroundings, so the model cannot lean on context alone (a pool is Water
    in a villa garden, not only in one). Unlabelled source pixels are never pasted."""
    present = np.unique(src_labels)
    present = present[present != IGNORE_INDEX]
    chosen = present[np.argsort(priority[present])[: -(-len(present) // 2)]]
    pasted = np.isin(src_labels, chosen)
    image, labels = image.copy(), labels.copy()
    image[pasted], labels[pasted] = src_image[pasted], src_labels[pasted]
    return image, labels
