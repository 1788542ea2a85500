"""Does an image look like what the model learnt from? One line of warning when it does not.

A segmentation network paints every pixel with some class, however foreign the image: a black
screen capture comes out "Water 100 %". Two signals, both free once the image is segmented:

- the image is (nearly) uniform: no picture at all, whatever the model says. This is what
  catches blank and black screens: the models are *confident* there (0.998-0.999);
- the model's confidence, its mean top-class probability over the image, is below a floor
  (a checkpoint may carry its own as ``confidence_floor``). Measured with
  ``benchmarks/robustness.py`` (README, "New ground") for ``unet`` and the augmented
  ``unet-effl0`` with a tile held out, it is a weak signal: held-out images score 0.94-1.00,
  the suite's scale and colour changes 0.92-0.97, and two ordinary photos 0.88-0.96. The
  default floor, 0.70, is set well below all of them, so it flags only maps the model is
  plainly unsure of (imagery far from its training, or an untrained model), never the
  held-out tile.
"""

from __future__ import annotations

import numpy as np

# mean top-class probability below which the map is flagged: see the module docstring
CONFIDENCE_FLOOR = 0.70
# a picture whose every channel varies less than this (0-255 scale) shows nothing
BLANK_SPREAD = 3.0

ADVICE = "check the map; correcting it on your imagery teaches the model (aerialseg finetune)"


def unusual(rgb: np.ndarray, confidence: float, meta: dict | None = None) -> str | None:
    """Why the map of ``rgb`` should not be trusted, or None when nothing looks wrong."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))  # ~250k pixels suffice
    sample = rgb[::step, ::step].reshape(-1, rgb.shape[-1]).astype(np.float32)
    if not len(sample):  # a raster whose every pixel is nodata
        return "the image holds no data (every pixel is nodata): there is nothing to map"
    if sample.std(axis=0).max() < BLANK_SPREAD:
        return "the image is almost uniform (a blank screen?): there is nothing to map"
    floor = float((meta or {}).get("confidence_floor", CONFIDENCE_FLOOR))
    if confidence < floor:
        return (
            f"the model is unsure (mean confidence {confidence:.2f}, below {floor:.2f}): this "
            f"imagery looks unlike its training data (scale, colours or kind of scene); {ADVICE}"
        )
    return None
