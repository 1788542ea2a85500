"""How far an image's encoder features lie from those of the model's training images.

Why: the model's confidence does not tell new ground from old (0.85-0.95 on every foreign
scene measured, README "New ground"), but what its encoder sees does. An image is cut into
windows of ``WINDOW`` pixels on a fixed grid; each window's deepest two encoder outputs
(strides 16 and 32) are averaged per channel. (Their per-channel standard deviations too
were tried: they separated the other places from Dubai less, benchmarks/warning.py.) The
training windows' pooled features give a reference: a centre, a per-feature scale, and a
probabilistic PCA of their spread (the top ``components`` directions with their variances,
and one variance for the rest), so the distance is a Mahalanobis distance that a few hundred
windows can estimate. A distance is ``sqrt(d² / D)``: about 1 for a typical training window.

An image's score is the median of its windows' distances (robust to a few odd windows: a
no-data edge, a ship); it is flagged when the score exceeds the ``threshold``. The threshold
comes from the training images alone: they are split into ``FOLDS`` folds, each fold's
images are scored against a reference fitted without them (so they count as *unseen*
images of the training place, as a user's new Dubai scene would be: a reference scores its
own windows too close), and the threshold is the ``quantile`` of those scores times
``margin``.

A fine-tuned model learns a new place: :func:`merge_reference` adds a centre made of the
user's windows (under the same spread), with a threshold at least as wide as the user's own
images need, so the fine-tuned checkpoint stops warning there. An image is unfamiliar only
when it is far from every centre.

The reference is JSON (arrays as base64 float32, ~80 KB for EfficientNet-Lite0) and lives in
the checkpoint's metadata under ``familiarity``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import numpy as np

from ..errors import AerialSegError

KEY = "familiarity"  # the checkpoint metadata key
VERSION = 1
WINDOW = 256  # the training patch size: windows see what training patches saw
LEVELS = 2  # the encoder's deepest outputs pooled (strides 16 and 32 for EfficientNet)
FOLDS = 5  # the threshold's out-of-fold scoring of the training images
REST_FLOOR = 0.1  # the least variance off the principal directions (see _fit)
PER_IMAGE = 16  # at most this many windows of one image: bounds the cost on huge rasters
MIN_VALID = 0.5  # a window needs this share of pixels with data to count


# -- windows and features --------------------------------------------------------------------


def window_grid(h: int, w: int, window: int = WINDOW, limit: int = PER_IMAGE) -> list:
    """(row, col, rows, cols) of at most ``limit`` windows spread evenly over an h x w image.
    Deterministic: the same image always gives the same windows."""
    rows, cols = min(h, window), min(w, window)
    nr, nc = -(-h // window), -(-w // window)
    if nr * nc > limit:
        f = np.sqrt(limit / (nr * nc))
        nr, nc = max(1, int(nr * f)), max(1, int(nc * f))
        nr, nc = min(nr, limit // nc), min(nc, limit // max(nr, 1))
    ys = np.linspace(0, h - rows, nr).round().astype(int) if nr > 1 else [(h - rows) // 2]
    xs = np.linspace(0, w - cols, nc).round().astype(int) if nc > 1 else [(w - cols) // 2]
    return [(int(y), int(x), rows, cols) for y in ys for x in xs]


def image_windows(rgb: np.ndarray, valid: np.ndarray | None = None, limit: int = PER_IMAGE):
    """The windows of an in-memory image that hold enough data."""
    out = []
    for y, x, r, c in window_grid(*rgb.shape[:2], limit=limit):
        if valid is None or valid[y : y + r, x : x + c].mean() >= MIN_VALID:
            out.append(rgb[y : y + r, x : x + c])
    return out


def raster_windows(src, limit: int = PER_IMAGE):
    """The windows of a :class:`~aerialseg.gis.rasters.RasterSource` that hold enough data,
    read one by one: a huge raster is never read whole."""
    out = []
    for y, x, r, c in window_grid(src.height, src.width, limit=limit):
        if src.valid(y, x, r, c).mean() >= MIN_VALID:
            out.append(src.read(y, x, r, c)[0])
    return out


def window_features(model, windows: Iterable[np.ndarray]) -> np.ndarray:
    """(n, D) float64 pooled features: the per-channel means of the encoder's ``LEVELS``
    deepest outputs, in float32 without autocast whatever the segmenter's precision, one window
    a pass, so a window always gives the same numbers."""
    import torch  # here: segment's stats writers import this module, torch-free until used

    if not hasattr(model, "encode"):
        raise AerialSegError(f"{type(model).__name__} has no encoder to measure familiarity by")
    rows = []
    with torch.inference_mode():
        for win in windows:
            x = torch.tensor(win).permute(2, 0, 1)[None].float()  # copies: may be read-only
            feats = model.encode(x)[-LEVELS:]
            rows.append(torch.cat([f[0].double().flatten(1).mean(1) for f in feats]).numpy())
    return np.stack(rows) if rows else np.zeros((0, 0))


# -- the reference -----------------------------------------------------------------------------


def _pack(a: np.ndarray) -> str:
    return base64.b64encode(np.asarray(a, "<f4").tobytes()).decode("ascii")


def _unpack(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), "<f4").astype(np.float64)


def feature_reference(
    model,
    images: Iterable[np.ndarray],
    components: int = 32,
    quantile: float = 0.95,
    margin: float = 1.1,
    per_image: int = PER_IMAGE,
) -> dict:
    """The JSON-able reference of ``model``'s training ``images`` (RGB uint8 arrays): the
    centre and spread of their windows' features, and the threshold, the ``quantile`` of the
    images' out-of-fold scores times ``margin`` (see the module docstring)."""
    feats = [window_features(model, image_windows(rgb, limit=per_image)) for rgb in images]
    feats = [f for f in feats if len(f)]
    if len(feats) < 2:
        raise AerialSegError(f"{len(feats)} images are too few for a feature reference")
    ref, mean = _fit(np.concatenate(feats), components)
    scores = []
    for fold in range(min(FOLDS, len(feats))):
        rest = [f for i, f in enumerate(feats) if i % FOLDS != fold]
        other, other_mean = _fit(np.concatenate(rest), components)
        scores += [_median(other, f, other_mean) for f in feats[fold::FOLDS]]
    centre = {
        "mean": _pack(mean),
        "threshold": float(np.quantile(scores, quantile) * margin),
        "windows": int(sum(len(f) for f in feats)),
        "images": len(feats),
    }
    return {**ref, "quantile": quantile, "margin": margin, "centres": [centre]}


def _fit(x: np.ndarray, components: int) -> tuple[dict, np.ndarray]:
    """(reference without centres, mean) of the window features ``x``: per-feature scale,
    and a probabilistic PCA of the scaled features."""
    mean, std = x.mean(0), x.std(0)
    scale = np.maximum(std, 0.01 * np.median(std)) + 1e-9  # a near-constant feature: no blow-up
    z = (x - mean) / scale
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    var = s**2 / max(len(z) - 1, 1)
    k = max(1, min(components, len(var) - 1))
    # PPCA's variance off the top directions: their mean, shrunk towards the scaled features'
    # own (1): a reference of fewer windows than features has not seen most directions, and
    # must not call them impossible (the bundled model's is 0.27, well above the floor)
    rest = max(var[k:].sum() / max(z.shape[1] - k, 1), REST_FLOOR)
    shape = {
        "scale": _pack(scale),
        "basis": _pack(vt[:k]),
        "variances": [max(float(v), 1e-6) for v in var[:k]],
        "rest": float(rest),
    }
    return {"version": VERSION, "window": WINDOW, "levels": LEVELS, "shape": shape}, mean


def _median(ref: dict, feats: np.ndarray, mean: np.ndarray) -> float:
    """An image's score: the median of its windows' distances."""
    return float(np.median(_distances(ref, feats, mean)))


def merge_reference(ref: dict, model, images: Iterable[np.ndarray]) -> dict:
    """``ref`` with one more centre: the windows of ``images`` as ``model`` (the fine-tuned
    one) sees them, spread as the reference's training windows are. Its threshold is the
    reference's, widened where the new images' own scores need it, so none of them is
    flagged. Costs one encoder pass per window (16 windows of a 1024² image at most)."""
    feats = [window_features(model, image_windows(rgb)) for rgb in images]
    feats = [f for f in feats if len(f)]
    if not feats:
        raise AerialSegError("no image with data to add to the feature reference")
    mean = np.concatenate(feats).mean(0)
    base = max(c["threshold"] for c in ref["centres"])
    worst = max(_median(ref, f, mean) for f in feats)
    centre = {
        "mean": _pack(mean),
        "threshold": max(base, worst * ref.get("margin", 1.1)),
        "windows": int(sum(len(f) for f in feats)),
        "images": len(feats),
    }
    return {**ref, "centres": [*ref["centres"], centre]}


def _distances(ref: dict, x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Each row's PPCA Mahalanobis distance from ``mean`` under ``ref``'s spread, as
    sqrt(d² / D): about 1 for a typical training window."""
    shape = ref["shape"]
    scale = _unpack(shape["scale"])
    basis = _unpack(shape["basis"]).reshape(-1, len(scale))
    var = np.asarray(shape["variances"], np.float64)
    if x.shape[1] != len(scale):
        raise AerialSegError(
            f"features of {x.shape[1]} values do not fit the reference's {len(scale)}"
        )
    z = (x - mean) / scale
    p = z @ basis.T
    rest = (z * z).sum(1) - (p * p).sum(1)
    d2 = (p * p / var).sum(1) + np.maximum(rest, 0) / shape["rest"]
    return np.sqrt(d2 / len(scale))


def score(ref: dict, feats: np.ndarray) -> tuple[float, float] | None:
    """(distance, threshold) of an image's window features: the median window distance to
    the centre it lies closest to, relative to that centre's threshold. None: no window."""
    if not len(feats):
        return None
    best = None
    for c in ref["centres"]:
        d = _median(ref, feats, _unpack(c["mean"]))
        if best is None or d / c["threshold"] < best[0] / best[1]:
            best = (d, float(c["threshold"]))
    return best


# -- what segment calls ------------------------------------------------------------------------


def _usable(meta: dict | None, model) -> dict | None:
    ref = (meta or {}).get(KEY)
    if not ref or ref.get("version") != VERSION or not hasattr(model, "encode"):
        return None  # no reference, a newer one, or a runtime without an encoder (ONNX)
    return ref


def image_familiarity(
    seg, rgb: np.ndarray, valid: np.ndarray | None = None
) -> tuple[float, float] | None:
    """(distance, threshold) of an in-memory image as ``seg`` sees it (resampled by its first
    scale), or None when the checkpoint carries no reference. ``valid``: where it holds
    data (windows mostly without are left out)."""
    ref = _usable(seg.meta, seg.model)
    if ref is None:
        return None
    scale = seg.scales[0]
    if scale != 1.0:
        from PIL import Image

        from .segmenter import scaled_size

        sh, sw = scaled_size(*rgb.shape[:2], scale)
        rgb = np.asarray(Image.fromarray(rgb).resize((sw, sh), Image.Resampling.BILINEAR))
        if valid is not None:
            valid = np.asarray(Image.fromarray(valid).resize((sw, sh), Image.Resampling.NEAREST))
    return score(ref, window_features(seg.model, image_windows(rgb, valid)))


def images_familiarity(model, meta: dict, images: Iterable[np.ndarray]):
    """(distance, threshold) of several images together as ``model`` sees them (what the
    fine-tune reads to tell a new place from a correction), or None without a reference."""
    ref = _usable(meta, model)
    if ref is None:
        return None
    return score(ref, np.concatenate([window_features(model, image_windows(i)) for i in images]))


def raster_familiarity(seg, src) -> tuple[float, float] | None:
    """As :func:`image_familiarity` for a raster source (its windows read one by one)."""
    ref = _usable(seg.meta, seg.model)
    if ref is None:
        return None
    return score(ref, window_features(seg.model, raster_windows(src)))


def familiarity_stats(near: tuple[float, float] | None) -> dict:
    """The stats JSON's record of the distance (nothing without a reference)."""
    if near is None:
        return {}
    return {"feature_distance": round(near[0], 4), "feature_threshold": round(near[1], 4)}
