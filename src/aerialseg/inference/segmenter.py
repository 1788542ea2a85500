"""Running a model on images of any size: a checkpoint loaded as a :class:`Segmenter`.

Windows (see :mod:`.tiling`) are predicted in batches, row of windows by row, top to bottom,
and every finished band of rows is handed out at once, so memory grows with the image
*width*, never with its area. TTA averages the 8 flips/rotations of each window. Scales
resample the image before the model sees it (imagery finer or coarser than the training
data's) and average the probabilities of several scales, resampled back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..classes import ClassTable, check_known
from ..errors import AerialSegError
from ..models import SegmentationModel
from ..models.base import fold_batchnorm
from ..models.retarget import retarget
from ..runtime import (
    autocast,
    channels_last,
    prepare,
    resolve_device,
    resolve_precision,
    to_device,
    to_tensor,
)
from .tiling import Tiling, count_windows, reflect_index, spline_window


@torch.inference_mode()
def predict_bands(
    model: SegmentationModel,
    rgb: np.ndarray,
    precision: str,
    tiling: Tiling | None = None,
    tta: bool = False,
    on_window: Callable[[int], None] | None = None,
    device: str = "cpu",
    *,
    valid=None,
    plan: tuple[list[int], list[int], int, int, int] | None = None,
    band_rows: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Blended class probabilities band by band: yields (first row, probs (rows, W, C) float32).

    Bands come in order and cover the image exactly once. ``on_window(n)`` is called after
    every n windows done (for progress bars). On a GPU ``device``, windows go there as bytes
    and come back as blended-weight probabilities; the running sums stay in CPU memory.

    ``rgb`` may also be a band-wise reader of an image too big for memory: anything with
    ``shape`` (H, W, 3) that ``rgb[rows]`` turns into (len(rows), W, 3) uint8 for an array of
    row indices. ``valid``, indexed the same way, gives (len(rows), W) bool where the image
    holds data: windows without any are skipped (not run through the network), and pixels that
    only skipped windows cover come out as NaN.

    ``plan``: the windows to run, as :meth:`Tiling.plan` gives them for ``rgb`` (default: that
    plan); a column chunk of a bigger raster runs its share of the raster's plan.
    ``band_rows``: hand out at most this many rows at a time (default: a window stride's),
    so that the bands, and what their consumer makes of them, are that much smaller.
    """
    model.eval()
    tiling = tiling or Tiling()
    h, w = rgb.shape[:2]
    b = tiling.border
    rows, cols, win_h, win_w, ramp = plan or tiling.plan(h, w)
    pw = w + 2 * b
    weight = torch.from_numpy(
        np.outer(spline_window(win_h, ramp), spline_window(win_w, ramp)).astype(np.float32)
    ).clamp_min(1e-4)  # never 0: a pixel only one window edge covers still gets a value
    col_idx = reflect_index(np.arange(-b, w + b), w)
    c = model.num_classes
    kinds = range(8) if tta else (0,)
    # running sums over padded rows [top, top + win_h): weighted probabilities and weights
    top, acc, wsum = 0, torch.zeros(c, win_h, pw), torch.zeros(win_h, pw)
    on_cpu = device == "cpu"
    weight_dev = weight if on_cpu else weight.to(device)

    def emit(until: int):
        """Hand out the finished padded rows [top, until) that lie on the image."""
        nonlocal top, acc, wsum
        lo, hi = max(top, b), min(until, b + h)
        step = band_rows or max(hi - lo, 1)
        for y in range(lo, hi, step):
            y1 = min(hi, y + step)
            band = acc[:, y - top : y1 - top, b : b + w] / wsum[y - top : y1 - top, b : b + w]
            yield y - b, band.permute(1, 2, 0).numpy()
            del band
        n = until - top
        # shift the running sums up by n rows in place, n rows at a time so no copy overlaps
        # its source (a fresh buffer would double this, the largest allocation, for a moment)
        for i in range(0, win_h - n, n):
            k = min(n, win_h - n - i)
            acc[:, i : i + k] = acc[:, i + n : i + n + k]
            wsum[i : i + k] = wsum[i + n : i + n + k]
        acc[:, max(0, win_h - n) :] = 0
        wsum[max(0, win_h - n) :] = 0
        top = until

    for y0 in rows:
        if y0 > top:
            yield from emit(y0)
        row_idx = reflect_index(np.arange(y0 - b, y0 - b + win_h), h)
        strip = rgb[row_idx][:, col_idx]
        todo = cols if valid is None else _with_data(valid[row_idx][:, col_idx], cols, win_w)
        if on_window and len(todo) < len(cols):
            on_window(len(cols) - len(todo))  # skipped windows count as done
        for i in range(0, len(todo), tiling.batch_size):
            xs = todo[i : i + tiling.batch_size]
            batch = np.stack([strip[:, x0 : x0 + win_w] for x0 in xs])
            if on_cpu:
                x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
            else:
                x = to_device(torch.from_numpy(batch), device).permute(0, 3, 1, 2).float()
            probs = None
            for p in _passes(model, x, kinds, precision, device):
                probs = p if probs is None else probs.add_(p)  # in order: the same sums
                del p
            del x, batch
            probs *= weight_dev / len(kinds)
            if not on_cpu:
                probs = probs.cpu()
            for j, x0 in enumerate(xs):
                acc[:, y0 - top : y0 - top + win_h, x0 : x0 + win_w] += probs[j]
                wsum[y0 - top : y0 - top + win_h, x0 : x0 + win_w] += weight
            del probs
            if on_window:
                on_window(len(xs))
    yield from emit(rows[-1] + win_h)


def _passes(model, x: torch.Tensor, kinds, precision: str, device: str):
    """The class probabilities of each flip/rotation ``kinds`` of ``x``, undone, in order; an
    onnxruntime model runs TTA's passes two at a time (:meth:`.onnx_model.OnnxModel.pair`)."""
    paired = model.pair() if len(kinds) > 1 and hasattr(model, "pair") else None
    if paired is not None:
        outs = paired.map(_dihedral_t(x, k) for k in kinds)
    else:
        outs = (_forward(model, _dihedral_t(x, k), precision, device) for k in kinds)
    for k, out in zip(kinds, outs):
        yield _undo_dihedral_t(out.float().softmax(1), k)
        del out


def _forward(model, x: torch.Tensor, precision: str, device: str) -> torch.Tensor:
    if channels_last(precision, device):
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(precision, device):
        return model(x)


def _with_data(valid: np.ndarray, cols: list[int], win_w: int) -> list[int]:
    """The window columns of a strip that hold at least one pixel with data."""
    return [x0 for x0 in cols if valid[:, x0 : x0 + win_w].any()]


def _dihedral_t(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th flip/rotation of the last two axes (as data.dihedral)."""
    if k == 0:
        return x  # rot90 by 0 would still copy the batch
    x = torch.rot90(x, k % 4, (-2, -1))
    return x.flip(-1) if k >= 4 else x


# The inverse of each of the 8 as (transpose?, then flip these axes): every undo is at most
# one copy, and two are views - half the copies of undoing the flip and the rotation in turn,
# over (C, H, W) float probabilities 8 times a window under TTA.
_UNDO = {
    0: (False, ()),
    1: (True, (-1,)),
    2: (False, (-2, -1)),
    3: (True, (-2,)),
    4: (False, (-1,)),
    5: (True, (-2, -1)),
    6: (False, (-2,)),
    7: (True, ()),
}


def _undo_dihedral_t(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`_dihedral_t`, a view where it can be."""
    transpose, dims = _UNDO[k]
    if transpose:
        x = x.transpose(-2, -1)
    return x.flip(dims) if dims else x


class Segmenter:
    """A trained model ready to segment RGB images of any size.

    >>> seg = load_segmenter()                # the bundled default model
    >>> labels = seg.segment(rgb)             # (H, W) class indices
    >>> probs = seg.predict_proba(rgb)        # (H, W, C) probabilities

    ``scales``: the model sees the image resampled by each factor (0.5 for imagery with twice
    the training data's resolution) and the maps, resampled back, are averaged.
    """

    def __init__(
        self,
        model: SegmentationModel,
        classes: ClassTable,
        meta: dict | None = None,
        precision: str = "auto",
        tiling: Tiling | None = None,
        device: str = "cpu",
        scales: tuple[float, ...] = (1.0,),
    ):
        if not scales or min(scales) <= 0:
            raise AerialSegError(f"scales must be positive, not {scales}")
        self.scales = tuple(scales)
        if not isinstance(model, torch.nn.Module):  # a runtime of its own (ONNX): as it is
            self.device, self.model = "cpu", model
            self.precision = (meta or {}).get("precision", "fp32")  # "int8" from load_int8
        else:
            self.device = resolve_device(device)
            self.precision = resolve_precision(precision, self.device)
            # a private copy, batch norm folded into the convs: inference only, same outputs
            model = fold_batchnorm(copy.deepcopy(model).cpu().eval())
            self.model = prepare(model, self.precision, self.device)
        self.classes = classes
        self.meta = meta or {}
        self.tiling = tiling or Tiling()

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.model.config["name"]

    @property
    def gsd(self) -> float | None:
        """Metres per pixel of the imagery the model was trained on, where it records it."""
        return (self.meta.get("train_config") or {}).get("gsd")

    def resampled(self, factor: float) -> Segmenter:
        """The same model seeing images resampled by ``factor`` more (shares the network)."""
        other = copy.copy(self)
        other.scales = tuple(s * factor for s in self.scales)
        return other

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """Exactly what the model is fed: (1, 3, H, W) float on the 0-255 scale (the model
        normalises internally, with statistics stored in its checkpoint)."""
        return to_tensor(check_rgb(rgb), self.precision, self.device)

    def bands(self, rgb: np.ndarray, tta: bool = False, on_window=None):
        """(first row, probabilities (rows, W, C)) band by band, as :func:`predict_bands`;
        with scales other than 1, the whole image's probabilities in one band."""
        rgb = check_rgb(rgb)
        if self.scales == (1.0,):
            return predict_bands(
                self.model, rgb, self.precision, self.tiling, tta, on_window, self.device
            )
        return iter([(0, self._multiscale(rgb, tta, on_window))])

    def count_windows(self, h: int, w: int) -> int:
        """Windows a ``h`` x ``w`` image takes (over all scales): for progress bars."""
        return sum(count_windows(*scaled_size(h, w, s), self.tiling) for s in self.scales)

    def _multiscale(self, rgb: np.ndarray, tta: bool, on_window) -> np.ndarray:
        """The mean of the probabilities at each scale, resampled back to the image's size.
        Held whole, so for images in memory (the streamed GIS path runs at scale 1)."""
        h, w = rgb.shape[:2]
        total = torch.zeros(self.model.num_classes, h, w)
        for s in self.scales:
            sh, sw = scaled_size(h, w, s)
            image = rgb
            if (sh, sw) != (h, w):  # PIL's bilinear filter widens when shrinking: antialiased
                image = np.asarray(Image.fromarray(rgb).resize((sw, sh), Image.Resampling.BILINEAR))
            probs = torch.empty(self.model.num_classes, sh, sw)
            for y, band in predict_bands(
                self.model, image, self.precision, self.tiling, tta, on_window, self.device
            ):
                probs[:, y : y + len(band)] = torch.from_numpy(band).permute(2, 0, 1)
            if (sh, sw) != (h, w):
                probs = F.interpolate(probs[None], (h, w), mode="bilinear", align_corners=False)[0]
            total += probs
        return (total / len(self.scales)).permute(1, 2, 0).numpy()

    def predict_proba(self, rgb: np.ndarray, tta: bool = False) -> np.ndarray:
        """(H, W, C) float32 class probabilities (blended windows; 8-fold TTA if ``tta``)."""
        rgb = check_rgb(rgb)
        out = np.empty((*rgb.shape[:2], self.model.num_classes), dtype=np.float32)
        for y, band in self.bands(rgb, tta):
            out[y : y + len(band)] = band
        return out

    def segment(self, rgb: np.ndarray, tta: bool = False) -> np.ndarray:
        """(H, W) uint8 class indices."""
        return self.segment_confidence(rgb, tta)[0]

    def segment_confidence(self, rgb: np.ndarray, tta: bool = False) -> tuple[np.ndarray, float]:
        """(H, W) uint8 class indices and the model's confidence: the mean over pixels of the
        top class probability (what :mod:`.confidence` warns on)."""
        rgb = check_rgb(rgb)
        out = np.empty(rgb.shape[:2], dtype=np.uint8)
        top = 0.0
        for y, band in self.bands(rgb, tta):
            out[y : y + len(band)] = band.argmax(-1)
            top += float(band.max(-1).sum(dtype=np.float64))
        return out, top / out.size


def scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    return max(16, round(h * scale)), max(16, round(w * scale))


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    # np.shape() reads any picture's shape (a PIL image's is (H, W, 3) too): name what else
    # it was, or the message refuses an (H, W, 3) shape for not being (H, W, 3)
    if not isinstance(rgb, np.ndarray):
        kind = f"{type(rgb).__module__}.{type(rgb).__name__}"
        raise AerialSegError(
            f"expected a numpy (H, W, 3) uint8 RGB array, got a {kind}; "
            "aerialseg.segment() takes PIL images, paths and other arrays"
        )
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise AerialSegError(f"expected an (H, W, 3) RGB array, got shape {np.shape(rgb)}")
    if rgb.dtype != np.uint8:
        raise AerialSegError(f"expected a uint8 RGB array, got {rgb.dtype}")
    return rgb


DEFAULT_MODEL = Path(__file__).parents[1] / "weights" / "default.safetensors"


RUNTIMES = ("torch", "onnx")


def load_segmenter(
    path: str | Path | None = None,
    precision: str = "auto",
    tiling: Tiling | None = None,
    device: str = "auto",
    runtime: str | None = None,
    scales: tuple[float, ...] = (1.0,),
    classes: ClassTable | None = None,
) -> Segmenter:
    """Load a checkpoint (None = the bundled default model) as a :class:`Segmenter`.

    ``precision`` "int8": the checkpoint quantised with its stored ranges, through onnxruntime
    (:mod:`.int8`). ``runtime`` "onnx" runs the model through onnxruntime on the CPU: an
    ``.onnx`` file from ``aerialseg export`` as it is, a checkpoint exported in memory first.
    None: "onnx" for an ``.onnx`` file, else "torch". ``scales``: see :class:`Segmenter`.
    ``classes``: the user's table, of classes the model knows
    (:func:`~aerialseg.classes.check_known`): the model's outputs are re-ordered by name to the
    table's (:mod:`~aerialseg.models.retarget`), so
    label indices, colours and statistics all follow it.
    """
    from ..models.checkpoint import load_checkpoint

    if path is None:
        path = DEFAULT_MODEL
        if not path.is_file():
            raise AerialSegError(
                f"the bundled model is missing ({path}); reinstall aerialseg or pass --model"
            )
    is_onnx = Path(path).suffix.lower() == ".onnx"
    if precision == "int8":  # onnxruntime's int8 kernels, whatever the runtime's default
        from .int8 import load_int8

        if runtime == "torch" or classes is not None or device not in ("auto", "cpu"):
            raise AerialSegError(
                "--precision int8 runs a checkpoint on the CPU through onnxruntime; "
                "leave out --runtime torch, --device and --classes"
            )
        model, classes, meta = load_int8(path)
        return Segmenter(model, classes, meta, tiling=tiling, scales=scales)
    runtime = runtime or ("onnx" if is_onnx else "torch")
    if runtime not in RUNTIMES:
        raise AerialSegError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        from .onnx_model import load_onnx

        if classes is not None:
            raise AerialSegError("--classes runs with --runtime torch (a checkpoint)")

        if device not in ("auto", "cpu"):
            raise AerialSegError("--runtime onnx runs on the CPU; leave out --device")
        model, classes, meta = load_onnx(path)
        return Segmenter(model, classes, meta, tiling=tiling, scales=scales)
    if is_onnx:
        raise AerialSegError(f"{path}: an ONNX model runs with --runtime onnx")
    model, own, meta = load_checkpoint(path)
    if classes is None:
        classes = own
    else:
        check_known(classes, own, "--classes")
        model = retarget(model, own, classes)
    meta.setdefault("name", Path(path).stem)
    return Segmenter(model, classes, meta, precision, tiling, device, scales)


load_model = load_segmenter  # the earlier name: it keeps working
