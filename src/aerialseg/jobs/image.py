"""A picture held in memory segmented band by band into its files: label PNG, colour mask,
overlay, figure, statistics (and per-class probabilities on request)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..inference.confidence import unusual
from ..inference.familiarity import familiarity_stats, image_familiarity
from ..io.outputs import staged, write_staged


def segment_image_to_files(
    seg,
    rgb: np.ndarray,
    paths: dict[str, Path],
    title: str,
    tta: bool = False,
    opacity: float = 0.5,
    gsd: float | None = None,
    on_window=None,
) -> dict:
    """Segment ``rgb`` band by band and write all outputs. Probabilities, when asked for,
    stream into a float16 .npy memory map, so even huge maps never sit in memory whole."""
    h, w = rgb.shape[:2]
    labels = np.empty((h, w), dtype=np.uint8)
    with staged(paths) as tmp:  # the probabilities too: all files of the image, or none
        probs = None
        if "probs" in tmp:
            probs = np.lib.format.open_memmap(
                tmp["probs"], mode="w+", dtype=np.float16, shape=(h, w, seg.model.num_classes)
            )
            reserve_space(tmp["probs"])
        top = 0.0  # sum of the top class probabilities: the model's confidence
        for y, band in seg.bands(rgb, tta, on_window):
            labels[y : y + len(band)] = band.argmax(-1)
            top += float(band.max(-1).sum(dtype=np.float64))
            if probs is not None:
                probs[y : y + len(band)] = band
        if probs is not None:
            probs.flush()
            del probs
        extra = model_stats(seg, tta, top / (h * w), image_familiarity(seg, rgb), rgb)
        return write_staged(tmp, rgb, labels, seg.classes, title, opacity, gsd, extra)


def model_stats(seg, tta: bool, confidence: float, near, sample: np.ndarray) -> dict:
    """What the statistics say of the model's run, the same for every kind of input: which
    model, its mean top probability, how far the imagery lies from its training imagery
    (``near``), and the warning when the map is not to be trusted (``sample``: the pixels
    the warning looks at)."""
    return {
        "model": seg.name,
        "precision": seg.precision,
        "tta": tta,
        "mean_confidence": round(confidence, 4),
        **familiarity_stats(near),
        "warning": unusual(sample, confidence, seg.meta, near),
    }


def reserve_space(path: Path) -> None:
    """Claim the disk space of a (sparse) memory-mapped file now: a full disk then fails here
    with ENOSPC, instead of killing the process with SIGBUS when a page is written."""
    if hasattr(os, "posix_fallocate"):
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
