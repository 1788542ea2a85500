"""The user-facing predictor: a checkpoint loaded as a :class:`Segmenter`."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..classes import ClassTable
from ..errors import AerialSegError
from ..models import SegmentationModel
from ..models.base import fold_batchnorm
from ..runtime import prepare, resolve_precision, to_tensor
from .tiling import Tiling, predict_bands


class Segmenter:
    """A trained model ready to segment RGB images of any size.

    >>> seg = load_model()                    # the bundled default model
    >>> labels = seg.segment(rgb)             # (H, W) class indices
    >>> probs = seg.predict_proba(rgb)        # (H, W, C) probabilities
    """

    def __init__(
        self,
        model: SegmentationModel,
        classes: ClassTable,
        meta: dict | None = None,
        precision: str = "auto",
        tiling: Tiling | None = None,
    ):
        self.precision = resolve_precision(precision)
        # a private copy with batch norm folded into the convs: inference only, same outputs
        self.model = prepare(fold_batchnorm(copy.deepcopy(model).eval()), self.precision)
        self.classes = classes
        self.meta = meta or {}
        self.tiling = tiling or Tiling()

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.model.config["name"]

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """Exactly what the model is fed: (1, 3, H, W) float on the 0-255 scale (the model
        normalises internally, with statistics stored in its checkpoint)."""
        return to_tensor(check_rgb(rgb), self.precision)

    def bands(self, rgb: np.ndarray, tta: bool = False, on_window=None):
        return predict_bands(
            self.model, check_rgb(rgb), self.precision, self.tiling, tta, on_window
        )

    def predict_proba(self, rgb: np.ndarray, tta: bool = False) -> np.ndarray:
        """(H, W, C) float32 class probabilities (blended windows; 8-fold TTA if ``tta``)."""
        rgb = check_rgb(rgb)
        out = np.empty((*rgb.shape[:2], self.model.num_classes), dtype=np.float32)
        for y, band in self.bands(rgb, tta):
            out[y : y + len(band)] = band
        return out

    def segment(self, rgb: np.ndarray, tta: bool = False) -> np.ndarray:
        """(H, W) uint8 class indices."""
        rgb = check_rgb(rgb)
        out = np.empty(rgb.shape[:2], dtype=np.uint8)
        for y, band in self.bands(rgb, tta):
            out[y : y + len(band)] = band.argmax(-1)
        return out


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise AerialSegError(f"expected an (H, W, 3) RGB array, got shape {np.shape(rgb)}")
    if rgb.dtype != np.uint8:
        raise AerialSegError(f"expected a uint8 RGB array, got {rgb.dtype}")
    return rgb


DEFAULT_MODEL = Path(__file__).parents[1] / "weights" / "default.safetensors"


def load_model(
    path: str | Path | None = None, precision: str = "auto", tiling: Tiling | None = None
) -> Segmenter:
    """Load a checkpoint (None = the bundled default model) as a :class:`Segmenter`."""
    from ..io.checkpoint import load_checkpoint

    if path is None:
        path = DEFAULT_MODEL
        if not path.is_file():
            raise AerialSegError(
                f"the bundled model is missing ({path}); reinstall aerialseg or pass --model"
            )
    model, classes, meta = load_checkpoint(path)
    meta.setdefault("name", Path(path).stem)
    return Segmenter(model, classes, meta, precision, tiling)
