"""Classic per-pixel baselines, scored exactly as the U-Net is.

- ``kmeans``: MiniBatchKMeans on pixel colours. It is unsupervised; to score it at all, each
  cluster is given the class most of its *training* pixels have (a majority vote that does use
  the training labels, and nothing else).
- ``svm``: an RBF-kernel SVM on per-pixel features, approximated (Nystroem map + linear SVM)
  because an exact kernel SVM would need hours to predict millions of pixels.
- ``random-forest``: a random forest on the same features.

Features are colour (RGB, HSV) plus a few cheap neighbourhood ones: box means of the colour
over 7x7 and 23x23 pixels, the local standard deviation of brightness and its gradient.
Models train on a random sample of training pixels, so time and memory stay bounded; scoring
goes through :func:`aerialseg.evaluate.evaluate` on the same held-out images as ``train``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .classes import IGNORE_INDEX, ClassTable
from .errors import AerialSegError

if TYPE_CHECKING:
    from .data.segmentation import Sample

METHODS = ("kmeans", "svm", "random-forest")
DEFAULT_PIXELS = {"kmeans": 200_000, "svm": 50_000, "random-forest": 200_000}
FEATURES = [
    *("red", "green", "blue", "hue", "saturation", "value"),
    *(f"{c} mean 7x7" for c in ("red", "green", "blue")),
    *(f"{c} mean 23x23" for c in ("red", "green", "blue")),
    *("brightness std 7x7", "brightness gradient"),
]


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise AerialSegError(
            "the baselines need scikit-learn: pip install 'aerialseg[baselines]'"
        ) from None


def pixel_features(rgb: np.ndarray, colour_only: bool = False) -> np.ndarray:
    """(H * W, 14) float32 features of every pixel (see FEATURES); (H * W, 3) with
    ``colour_only``."""
    from matplotlib.colors import rgb_to_hsv
    from scipy import ndimage

    x = rgb.astype(np.float32) / 255
    if colour_only:
        return x.reshape(-1, 3)
    grey = x.mean(-1)
    local = ndimage.uniform_filter(grey, 7)
    std = np.sqrt(np.maximum(ndimage.uniform_filter(grey * grey, 7) - local * local, 0))
    grad = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1))
    planes = [
        x,
        rgb_to_hsv(x).astype(np.float32),
        ndimage.uniform_filter(x, (7, 7, 1)),
        ndimage.uniform_filter(x, (23, 23, 1)),
        std[..., None],
        grad[..., None],
    ]
    return np.concatenate(planes, axis=-1).reshape(-1, len(FEATURES))


def sample_pixels(
    samples: Sequence[Sample], n: int, seed: int, progress: bool = False, colour_only=False
) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of up to ``n`` labelled training pixels drawn uniformly over all
    images."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    valid = np.array([int((s.labels != IGNORE_INDEX).sum()) for s in samples], dtype=np.int64)
    if not valid.sum():
        raise AerialSegError("the training images have no labelled pixels")
    # n distinct pixels out of all labelled ones (all of them when there are fewer)
    picks = rng.choice(int(valid.sum()), size=min(n, int(valid.sum())), replace=False)
    per_image = np.bincount(
        np.searchsorted(np.cumsum(valid), picks, side="right"), minlength=len(samples)
    )
    xs, ys = [], []
    bar = tqdm(
        list(zip(samples, per_image)),
        desc="sampling pixels",
        unit="img",
        leave=False,
        disable=None if progress else True,
    )
    for s, k in bar:
        if not k:
            continue
        labels = s.labels.ravel()
        idx = rng.choice(np.flatnonzero(labels != IGNORE_INDEX), size=k, replace=False)
        xs.append(pixel_features(s.image, colour_only)[idx])
        ys.append(labels[idx])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


class PixelBaseline:
    """A fitted baseline that looks like a :class:`~aerialseg.infer.Segmenter` to
    :func:`aerialseg.evaluate.evaluate`: ``classes``, ``name`` and ``predict_proba``.
    It times its own predictions and can keep them (for writing outputs afterwards)."""

    def __init__(self, method: str, classes: ClassTable, clusters: int | None = None, seed=0):
        if method not in METHODS:
            raise AerialSegError(f"unknown baseline {method!r}; valid: {', '.join(METHODS)}")
        if clusters is not None and clusters < 2:
            raise AerialSegError(f"need at least 2 clusters, not {clusters}")
        self.method, self.classes, self.seed = method, classes, seed
        self.clusters = clusters or len(classes)
        self.name = method
        self.predict_seconds = 0.0
        self.keep = False
        self.predictions: list[np.ndarray] = []

    def fit(self, x: np.ndarray, y: np.ndarray) -> PixelBaseline:
        _sklearn()
        if self.method == "kmeans":
            from sklearn.cluster import MiniBatchKMeans

            self.model = MiniBatchKMeans(
                self.clusters, random_state=self.seed, n_init=3, batch_size=4096
            ).fit(x)
            votes = np.zeros((self.clusters, len(self.classes)), dtype=np.int64)
            np.add.at(votes, (self.model.labels_, y), 1)
            self.cluster_class = np.where(
                votes.sum(1) > 0, votes.argmax(1), np.bincount(y).argmax()
            )
        elif self.method == "svm":
            from sklearn.kernel_approximation import Nystroem
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler
            from sklearn.svm import LinearSVC

            self.model = make_pipeline(
                StandardScaler(),
                Nystroem(gamma=1.0 / x.shape[1], n_components=300, random_state=self.seed),
                LinearSVC(C=1.0, random_state=self.seed),
            ).fit(x, y)
        else:
            from sklearn.ensemble import RandomForestClassifier

            self.model = RandomForestClassifier(
                n_estimators=40, max_depth=16, min_samples_leaf=5, random_state=self.seed
            ).fit(x, y)
        return self

    def _predict_features(self, f: np.ndarray) -> np.ndarray:
        """(N, C) probabilities; hard one-hot for the methods that give no probabilities."""
        c = len(self.classes)
        if self.method == "random-forest":
            out = np.zeros((len(f), c), dtype=np.float32)
            out[:, self.model.classes_] = self.model.predict_proba(f)
            return out
        pred = (
            self.cluster_class[self.model.predict(f)]
            if self.method == "kmeans"
            else self.model.predict(f)
        )
        return np.eye(c, dtype=np.float32)[pred]

    def predict_proba(self, rgb: np.ndarray, tta: bool = False) -> np.ndarray:
        """(H, W, C) float32 probabilities, in bands so memory stays bounded."""
        if tta:
            raise AerialSegError("the baselines have no test-time augmentation")
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        f = pixel_features(rgb, colour_only=self.method == "kmeans")
        out = np.empty((h * w, len(self.classes)), dtype=np.float32)
        step = 1 << 18
        for i in range(0, len(f), step):
            out[i : i + step] = self._predict_features(f[i : i + step])
        out = out.reshape(h, w, -1)
        self.predict_seconds += time.perf_counter() - t0
        if self.keep:
            self.predictions.append(out.argmax(-1).astype(np.uint8))
        return out

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return self.predict_proba(rgb).argmax(-1).astype(np.uint8)


def run_baseline(
    method: str,
    data: str | Path,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_pixels: int | None = None,
    clusters: int | None = None,
    out: str | Path | None = None,
    confusion: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    log=print,
) -> dict:
    """Train ``method`` on the training images of the default image split and score it on the
    held-out ones; returns the ``aerialseg evaluate --json`` keys plus timings."""
    from .classes import DUBAI
    from .data.segmentation import check_labelled, load_dataset
    from .data.splits import split_images
    from .inference.evaluate import evaluate

    _sklearn()
    base = PixelBaseline(method, DUBAI, clusters, seed)  # checks the arguments before loading
    n = max_pixels or DEFAULT_PIXELS[method]
    if n < 100:
        raise AerialSegError(f"need at least 100 training pixels, not {n}")
    samples = load_dataset(data, DUBAI, progress=progress)
    train, val = split_images(samples, val_fraction, seed)
    check_labelled(train, DUBAI, f"{data} (training images)")
    check_labelled(val, DUBAI, f"{data} (validation images)")
    if out:
        from .io.outputs import check_free, output_paths

        for s in val:
            check_free(output_paths(Path(out), s.id), overwrite)
    t0 = time.perf_counter()
    x, y = sample_pixels(train, n, seed, progress, colour_only=method == "kmeans")
    base.fit(x, y)
    train_seconds = time.perf_counter() - t0
    log(f"{method}: trained on {len(y):,} pixels of {len(train)} images in {train_seconds:.1f}s")
    base.keep = bool(out)
    result = evaluate(base, val, progress=progress)
    if confusion:
        from .plots import confusion_matrix

        confusion_matrix(result["confusion_matrix"], DUBAI, confusion)
    if out:
        from .io.outputs import output_paths, write_outputs

        for s, labels in zip(val, base.predictions):
            paths = output_paths(Path(out), s.id)
            write_outputs(paths, s.image, labels, DUBAI, s.id, extra={"model": method})
    megapixels = sum(s.area for s in val) / 1e6
    result.update(
        method=method,
        train_seconds=train_seconds,
        train_pixels=len(y),
        train_images=len(train),
        predict_seconds=base.predict_seconds,
        megapixels=megapixels,
        predict_seconds_per_megapixel=base.predict_seconds / megapixels,
        features=["red", "green", "blue"] if method == "kmeans" else FEATURES,
    )
    if method == "kmeans":
        result["clusters"] = base.clusters
        result["cluster_classes"] = [DUBAI.names[c] for c in base.cluster_class]
        result["note"] = (
            "unsupervised clustering; clusters were named by majority vote of training labels"
        )
    return result
