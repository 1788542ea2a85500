"""Does an image look like what the model learnt from? One line of warning when it does not.

A segmentation network paints every pixel with some class, however foreign the image: a black
screen capture comes out "Water 100 %". Three signals:

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
- where the checkpoint carries a feature reference (:mod:`.familiarity`), the distance of the
  image's encoder features from its training images'. This is the signal that separates
  other places from held-out Dubai images (benchmarks/warning.py), so it comes before the
  confidence floor.
"""

from __future__ import annotations

import numpy as np

# mean top-class probability below which the map is flagged: see the module docstring
CONFIDENCE_FLOOR = 0.70
# a picture whose every channel varies less than this (0-255 scale) shows nothing
BLANK_SPREAD = 3.0

ADVICE = "check the map; correcting it on your imagery teaches the model (aerialseg finetune)"
UNFAMILIAR = (
    "this imagery looks unlike what the model learnt from (feature distance {d:.2f}, above "
    "{t:.2f}): the map may be wrong; paint a few strokes on it and run aerialseg finetune"
)


def unusual(
    rgb: np.ndarray,
    confidence: float,
    meta: dict | None = None,
    familiarity: tuple[float, float] | None = None,
) -> str | None:
    """Why the map of ``rgb`` should not be trusted, or None when nothing looks wrong.
    ``familiarity``: (distance, threshold) from :mod:`.familiarity`, None where the
    checkpoint has no feature reference (then only the confidence floor speaks)."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))  # ~250k pixels suffice
    sample = rgb[::step, ::step].reshape(-1, rgb.shape[-1]).astype(np.float32)
    if not len(sample):  # a raster whose every pixel is nodata
        return "the image holds no data (every pixel is nodata): there is nothing to map"
    if sample.std(axis=0).max() < BLANK_SPREAD:
        return "the image is almost uniform (a blank screen?): there is nothing to map"
    if familiarity is not None and familiarity[0] > familiarity[1]:
        return UNFAMILIAR.format(d=familiarity[0], t=familiarity[1])
    floor = float((meta or {}).get("confidence_floor", CONFIDENCE_FLOOR))
    if confidence < floor:
        return (
            f"the model is unsure (mean confidence {confidence:.2f}, below {floor:.2f}): this "
            f"imagery looks unlike its training data (scale, colours or kind of scene); {ADVICE}"
        )
    return None
