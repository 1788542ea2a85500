"""Image classification: datasets, the training loop, evaluation and prediction.

Three kinds of data, all held in memory as one uint8 array of equal-sized RGB images:

- ``cifar100``: the ``cifar-100-python/`` pickles (``train``, ``test``, ``meta``) of the ISLR lab,
  read with an unpickler that can build nothing but plain containers and uint8 arrays;
- ``imagefolder``: one sub-folder per class (optionally under ``train/`` and ``test/``);
- ``landcover``: square patches cut from a segmentation dataset, labelled by their majority
  class when it covers at least ``min_share`` of the patch, split by image as the U-Net is.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_checkpoint, save_checkpoint
from .classes import DUBAI, IGNORE_INDEX, ClassTable
from .data import _natural_key, dihedral, load_dataset, split_images
from .errors import AerialSegError
from .images import IMAGE_SUFFIXES, read_image, write_text
from .models import create_model, list_models

KINDS = ("auto", "cifar100", "imagefolder", "landcover")
SPLITS = ("val", "test", "all")


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


# ---------------------------------------------------------------------------------------------
# CIFAR-100


class _CifarUnpickler(pickle.Unpickler):
    """Only what the CIFAR files contain: containers, bytes and uint8 numpy arrays. Any other
    global (os.system, eval, ...) is refused, so a crafted file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol 2
        *((m, n) for m in ("builtins", "__builtin__") for n in ("dict", "list", "bytes", "str")),
        *((m, "int") for m in ("builtins", "__builtin__")),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    if not path.is_file():
        raise AerialSegError(f"{path}: no such file (expected cifar-100-python/{path.name})")
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise AerialSegError(f"{path}: not a CIFAR pickle file ({e})") from None
    if not isinstance(d, dict):
        raise AerialSegError(f"{path}: not a CIFAR pickle file (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def cifar_root(root: str | Path) -> Path:
    root = Path(root)
    return root / "cifar-100-python" if (root / "cifar-100-python").is_dir() else root


def read_cifar100(root: str | Path, split: str = "train", label: str = "fine") -> ImageSet:
    """One file (``train`` or ``test``) of ``cifar-100-python/``, with ``fine`` (100) or
    ``coarse`` (20) labels."""
    root = cifar_root(root)
    if label not in ("fine", "coarse"):
        raise AerialSegError(f"unknown CIFAR label set {label!r}: use fine or coarse")
    meta = _read_pickle(root / "meta")
    d = _read_pickle(root / split)
    try:
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in meta[f"{label}_label_names"]
        ]
        data, labels = d["data"], np.asarray(d[f"{label}_labels"], dtype=np.int64)
        files = d.get("filenames") or [f"{i}" for i in range(len(labels))]
    except KeyError as e:
        raise AerialSegError(f"{root}: CIFAR file lacks {e}") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise AerialSegError(f"{root / split}: 'data' is not an (N, 3072) uint8 array")
    if data.shape != (len(labels), 3072) or labels.min() < 0 or labels.max() >= len(names):
        raise AerialSegError(f"{root / split}: data, labels and class names do not fit together")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are R, G, B planes
    ids = [f"{split}/{f.decode() if isinstance(f, bytes) else f}" for f in files]
    return ImageSet(np.ascontiguousarray(images), labels, class_table(names), ids)


# ---------------------------------------------------------------------------------------------
# ImageFolder


def _class_dirs(root: Path) -> list[Path]:
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: _natural_key(d.name),
    )


def read_image_folder(
    root: str | Path, size: int, names: Sequence[str] | None = None, progress: bool = False
) -> ImageSet:
    """Every image under ``root/<class>/``, centre-cropped and resized to ``size``."""
    root = Path(root)
    dirs = _class_dirs(root)
    found = [d.name for d in dirs]
    names = list(names) if names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise AerialSegError(f"{root}: class folders {unknown} are not classes of this model")
    files = [
        (f, names.index(d.name))
        for d in dirs
        for f in sorted(d.iterdir(), key=lambda p: _natural_key(p.name))
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    ]
    if not files:
        raise AerialSegError(
            f"{root}: no images in class sub-folders (expected {root}/<class name>/*.jpg)"
        )
    if progress:
        from tqdm import tqdm

        files = tqdm(files, desc="reading images", unit="img", leave=False, disable=None)
    images, labels, ids = [], [], []
    for f, c in files:
        images.append(fit_square(read_image(f), size))
        labels.append(c)
        ids.append(str(f.relative_to(root)))
    return ImageSet(np.stack(images), np.array(labels, dtype=np.int64), class_table(names), ids)


def folder_parts(root: Path) -> tuple[Path, Path | None]:
    """(training folder, test folder or None): ``train/`` + ``test/`` (or ``val/``) when the
    folder is laid out that way, else the folder itself and no test set."""
    if (root / "train").is_dir():
        for name in ("test", "val"):
            if (root / name).is_dir():
                return root / "train", root / name
    return root, None


# ---------------------------------------------------------------------------------------------
# Land-cover patches


def patch_labels(
    labels: np.ndarray, size: int, stride: int, num_classes: int, min_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Majority class of every ``size`` x ``size`` window at ``stride`` steps of a label map,
    and whether it covers at least ``min_share`` of the window (ignored pixels count against).
    Returns (labels, keep), both of shape (rows, cols)."""
    win = np.lib.stride_tricks.sliding_window_view(labels, (size, size))[::stride, ::stride]
    counts = np.stack([(win == c).sum(axis=(2, 3)) for c in range(num_classes)], axis=-1)
    best = counts.argmax(-1)
    share = counts.max(-1) / (size * size)
    return best, share >= min_share


def landcover_patches(
    samples,
    mask_classes: ClassTable,
    size: int,
    min_share: float = 0.5,
    stride: int | None = None,
) -> ImageSet:
    """Patches of ``samples`` labelled by majority land-cover class; background (Unlabeled)
    and mixed patches are left out. Classes are the land-cover classes of ``mask_classes``."""
    if not 0 < min_share <= 1:
        raise AerialSegError(f"min share must be in (0, 1], not {min_share}")
    stride = stride or size
    keep_classes = mask_classes.land_cover
    remap = np.full(len(mask_classes), -1, dtype=np.int64)
    remap[keep_classes] = np.arange(len(keep_classes))
    images, labels, ids = [], [], []
    for s in samples:
        h, w = s.labels.shape
        if h < size or w < size:
            continue
        best, keep = patch_labels(s.labels, size, stride, len(mask_classes), min_share)
        for r, c in zip(*np.nonzero(keep & (remap[best] >= 0))):
            y, x = r * stride, c * stride
            images.append(s.image[y : y + size, x : x + size])
            labels.append(remap[best[r, c]])
            ids.append(f"{s.id}@{y},{x}")
    table = ClassTable(
        tuple(mask_classes.names[i] for i in keep_classes),
        tuple(mask_classes.colors[i] for i in keep_classes),
    )
    empty = np.zeros((0, size, size, 3), dtype=np.uint8)
    return ImageSet(
        np.stack(images) if images else empty, np.array(labels, dtype=np.int64), table, ids
    )


# ---------------------------------------------------------------------------------------------
# Configuration and data loading


@dataclass
class ClassifyConfig:
    data: str = ""
    dataset: str = "auto"  # auto | cifar100 | imagefolder | landcover
    model: str = "cnn-islr"
    base_filters: int | None = None
    dropout: float | None = None
    dense: int | None = None
    size: int | None = None  # input side (CIFAR: 32; else default 32)
    label: str = "fine"  # CIFAR-100 fine (100) or coarse (20) labels
    min_share: float = 0.5  # landcover: share the majority class must cover
    stride: int | None = None  # landcover: patch step (default = size, no overlap)
    val_fraction: float = 0.2
    seed: int = 0
    limit: int | None = None  # at most this many training images (quick runs)
    normalization: str = "scale"  # scale (x / 255, the lab's) | meanstd (training statistics)
    augment: bool = False  # flips (+ rotations for aerial patches)
    epochs: int = 30
    minutes: float | None = None
    batch_size: int = 128
    lr: float = 1e-3
    threads: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def detect_kind(root: Path) -> str:
    if not root.exists():
        raise AerialSegError(f"{root}: no such data folder")
    if not root.is_dir():
        raise AerialSegError(f"{root}: not a folder")
    r = cifar_root(root)
    if (r / "meta").is_file() and (r / "train").is_file():
        return "cifar100"
    if (root / "images").is_dir() or any((d / "images").is_dir() for d in _class_dirs(root)):
        return "landcover"
    return "imagefolder"


def _holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: a seeded shuffle, the last ``fraction`` held out."""
    if not 0 < fraction < 1:
        raise AerialSegError(f"validation fraction must be between 0 and 1, not {fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 1:
        raise AerialSegError(f"{n} images are too few to hold out a validation set")
    return np.sort(order[:-n_val]), np.sort(order[-n_val:])


def load_data(ds: dict, which: Sequence[str], progress: bool = False) -> dict[str, ImageSet]:
    """The named parts (``train``, ``val``, ``test``, ``all``) of the dataset described by
    ``ds`` (the ``dataset`` entry of a run's metadata)."""
    root, kind, size = Path(ds["root"]), ds["kind"], ds["size"]
    out: dict[str, ImageSet] = {}
    if kind == "cifar100":
        full = read_cifar100(root, "train", ds["label"])
        tr, va = _holdout(len(full), ds["val_fraction"], ds["seed"])
        parts = {"train": lambda: full.subset(tr), "val": lambda: full.subset(va)}
        parts["test"] = lambda: read_cifar100(root, "test", ds["label"])
        parts["all"] = lambda: _concat([full, parts["test"]()])
    elif kind == "imagefolder":
        train_dir, test_dir = folder_parts(root)
        full = read_image_folder(train_dir, size, ds.get("names"), progress)
        tr, va = _holdout(len(full), ds["val_fraction"], ds["seed"])
        parts = {"train": lambda: full.subset(tr), "val": lambda: full.subset(va)}
        if test_dir is not None:
            test = read_image_folder(test_dir, size, full.classes.names, progress)
            parts["test"], parts["all"] = (lambda: test), (lambda: _concat([full, test]))
        else:
            parts["all"] = lambda: full
    elif kind == "landcover":
        mask_classes = ClassTable.from_dict(ds["mask_classes"])
        samples = load_dataset(root, mask_classes, progress=progress)
        args = (mask_classes, size, ds["min_share"], ds["stride"])
        held = set(ds.get("val_images") or [])
        if not held:  # a new run: split as the U-Net does, and remember it in ``ds``
            held = {s.id for s in split_images(samples, ds["val_fraction"], ds["seed"])[1]}
            ds["val_images"] = sorted(held)
        parts = {
            "train": lambda: landcover_patches([s for s in samples if s.id not in held], *args),
            "val": lambda: landcover_patches([s for s in samples if s.id in held], *args),
            "all": lambda: landcover_patches(samples, *args),
        }
    else:
        raise AerialSegError(f"unknown dataset kind {kind!r}; valid: {', '.join(KINDS[1:])}")
    for name in which:
        if name not in parts:
            raise AerialSegError(f"this {kind} dataset has no {name} split")
        out[name] = parts[name]()
        if not len(out[name]):
            raise AerialSegError(f"{root}: the {name} split has no images")
    return out


def _concat(sets: Sequence[ImageSet]) -> ImageSet:
    return ImageSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.labels for s in sets]),
        sets[0].classes,
        [i for s in sets for i in s.ids],
    )


def describe_dataset(cfg: ClassifyConfig) -> dict:
    """What ``load_data`` needs to rebuild the same splits later (stored in checkpoints)."""
    if not cfg.data:
        raise AerialSegError("no data folder given (--data DIR)")
    root = Path(cfg.data)
    kind = detect_kind(root) if cfg.dataset == "auto" else cfg.dataset
    if kind not in KINDS[1:]:
        raise AerialSegError(f"unknown dataset kind {kind!r}; valid: {', '.join(KINDS)}")
    size = cfg.size or 32
    if kind == "cifar100" and size != 32:
        raise AerialSegError(f"CIFAR images are 32x32; --size {size} does not apply")
    ds = {"kind": kind, "root": str(root.resolve()), "size": size}
    ds.update(val_fraction=cfg.val_fraction, seed=cfg.seed)
    if kind == "cifar100":
        ds["label"] = cfg.label
    elif kind == "landcover":
        ds.update(min_share=cfg.min_share, stride=cfg.stride or size, mask_classes=DUBAI.to_dict())
    return ds


# ---------------------------------------------------------------------------------------------
# Metrics


def classification_metrics(confusion: np.ndarray, classes: ClassTable) -> dict:
    """Accuracy, per-class accuracy (recall; None where a class has no images) and the
    confusion matrix (rows = truth, columns = prediction)."""
    cm = np.asarray(confusion, dtype=np.int64)
    n, rows = int(cm.sum()), cm.sum(1)
    per_class = {
        name: (float(cm[i, i] / rows[i]) if rows[i] else None)
        for i, name in enumerate(classes.names)
    }
    present = [v for v in per_class.values() if v is not None]
    return {
        "accuracy": float(np.trace(cm) / n) if n else float("nan"),
        "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
        "per_class_accuracy": per_class,
        "confusion_matrix": cm.tolist(),
        "images": n,
    }


def to_batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


@torch.inference_mode()
def predict_proba(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(N, C) class probabilities for (N, S, S, 3) uint8 images."""
    model.eval()
    out = [
        model(to_batch(images[i : i + batch_size])).float().softmax(1).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


@torch.inference_mode()
def evaluate_classifier(model, data: ImageSet, batch_size: int = 512) -> dict:
    """The keys of ``aerialseg classify evaluate --json``, plus the mean cross-entropy."""
    model.eval()
    k = len(data.classes)
    cm = np.zeros((k, k), dtype=np.int64)
    loss = 0.0
    for i in range(0, len(data), batch_size):
        logits = model(to_batch(data.images[i : i + batch_size])).float()
        y = torch.from_numpy(data.labels[i : i + batch_size])
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        cm += np.bincount(y.numpy() * k + logits.argmax(1).numpy(), minlength=k * k).reshape(k, k)
    return {**classification_metrics(cm, data.classes), "loss": loss / max(1, len(data))}


# ---------------------------------------------------------------------------------------------
# Pictures


def training_curves(history: Sequence[dict], path: str | Path) -> Path:
    from .plots import training_curves as curves

    accuracy = (
        ("train_accuracy", "y", "Training accuracy"),
        ("val_accuracy", "r", "Validation accuracy"),
    )
    return curves(history, path, accuracy, "Training and validation accuracy", "Accuracy")


def confusion_png(confusion, classes: ClassTable, path: str | Path) -> Path:
    """The segmentation confusion plot for a few classes; a plain heat map for many (CIFAR's
    100 would need 10 000 printed numbers)."""
    from .plots import confusion_matrix, plt, save_figure

    if len(classes) <= 20:
        return confusion_matrix(np.asarray(confusion), classes, path)
    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(10, 9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xlabel="Predicted class", ylabel="True class", title="Confusion matrix (rows sum to 1)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Training

HISTORY_FIELDS = ["epoch", "seconds", "minutes", "train_loss", "train_accuracy"]
HISTORY_FIELDS += ["val_loss", "val_accuracy", "val_balanced_accuracy"]


def check_model_name(name: str) -> None:
    if name not in list_models("classification"):
        valid = ", ".join(list_models("classification"))
        raise AerialSegError(f"unknown classifier {name!r}; valid: {valid}")


def build_classifier(cfg: ClassifyConfig, train: ImageSet, size: int):
    check_model_name(cfg.model)
    if cfg.normalization == "scale":
        norm = {"kind": "meanstd", "mean": [0.0] * 3, "std": [255.0] * 3}
    elif cfg.normalization == "meanstd":
        mean = train.images.reshape(-1, 3).mean(0, dtype=np.float64)
        std = train.images.reshape(-1, 3).std(0, dtype=np.float64)
        norm = {"kind": "meanstd", "mean": mean.tolist(), "std": np.maximum(std, 1e-3).tolist()}
    else:
        raise AerialSegError(f"unknown normalisation {cfg.normalization!r}: use scale or meanstd")
    arch = {k: getattr(cfg, k) for k in ("base_filters", "dropout", "dense")}
    arch = {k: v for k, v in arch.items() if v is not None}
    return create_model(
        cfg.model, num_classes=len(train.classes), input_size=size, normalization=norm, **arch
    )


def _augment(images: np.ndarray, rng: np.random.Generator, rotations: bool) -> np.ndarray:
    """Random flips; all 8 flips/rotations for aerial patches, which have no "up"."""
    if rotations:
        ks = rng.integers(8, size=len(images))
        return np.stack([dihedral(im, int(k)) for im, k in zip(images, ks)])
    flip = rng.random(len(images)) < 0.5
    images = images.copy()
    images[flip] = images[flip, :, ::-1]
    return images


def train_classifier(
    cfg: ClassifyConfig,
    out_dir: str | Path,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """Train as ``aerialseg classify train`` does; returns the best and last epoch's rows."""
    from tqdm import tqdm

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise AerialSegError(f"{out}: run folder exists and is not empty (pick a new folder)")
    if cfg.batch_size < 1 or cfg.lr <= 0:
        raise AerialSegError("batch size must be >= 1 and the learning rate > 0")
    if cfg.epochs < 1 and not cfg.minutes:
        raise AerialSegError("give at least one epoch (or --minutes)")
    check_model_name(cfg.model)  # before minutes of data loading
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ds = describe_dataset(cfg)
    parts = load_data(ds, ("train", "val"), progress)
    train, val = parts["train"], parts["val"]
    if ds["kind"] == "imagefolder":
        ds["names"] = list(train.classes.names)
    if cfg.limit:
        keep = np.random.default_rng(cfg.seed).permutation(len(train))[: cfg.limit]
        train = train.subset(np.sort(keep))
    model = build_classifier(cfg, train, ds["size"])
    counts = ", ".join(f"{n} {c}" for n, c in zip(train.classes.names, train.counts()))
    log(
        f"{ds['kind']}: {len(train)} training and {len(val)} validation images of "
        f"{ds['size']}x{ds['size']}, {len(train.classes)} classes"
        + (f" (training: {counts})" if len(train.classes) <= 10 else "")
    )
    # Keras' RMSprop defaults (rho 0.9, eps 1e-7), which the ISLR lab used
    opt = torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=0.9, eps=1e-7)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    write_text(out / "status.json", json.dumps({"status": "running"}) + "\n")
    history: list[dict] = []
    best, elapsed, epoch = -1.0, 0.0, 0
    n_batches = -(-len(train) // cfg.batch_size)
    while (epoch < cfg.epochs) if not cfg.minutes else elapsed < cfg.minutes * 60:
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        model.train()
        order = rng.permutation(len(train))
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(
            range(n_batches),
            desc=f"epoch {epoch + 1}",
            unit="batch",
            leave=False,
            disable=None if progress else True,
        )
        for b in bar:
            idx = np.sort(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            images = train.images[idx]
            if cfg.augment:
                images = _augment(images, rng, ds["kind"] == "landcover")
            y = torch.from_numpy(train.labels[idx])
            logits = model(to_batch(images))
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if cfg.minutes and elapsed + time.perf_counter() - t0 >= cfg.minutes * 60:
                break
        bar.close()
        va = evaluate_classifier(model, val)
        seconds = time.perf_counter() - t0
        elapsed += seconds
        epoch += 1
        row = {
            "epoch": epoch,
            "seconds": round(seconds, 2),
            "minutes": round(elapsed / 60, 3),
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "val_loss": va["loss"],
            "val_accuracy": va["accuracy"],
            "val_balanced_accuracy": va["balanced_accuracy"],
        }
        history.append(row)
        log(
            f"Epoch {epoch}/{cfg.epochs if not cfg.minutes else '-'} - {seconds:.0f}s - loss: "
            f"{row['train_loss']:.4f} - accuracy: {row['train_accuracy']:.4f} - val_loss: "
            f"{row['val_loss']:.4f} - val_accuracy: {row['val_accuracy']:.4f}"
        )
        meta = {
            "task": "classification",
            "dataset": ds,
            "train_config": cfg.to_dict(),
            "epoch": epoch,
            "train_images": len(train),
            "metrics": {**va, "train_minutes": elapsed / 60},
        }
        save_checkpoint(out / "last.safetensors", model, train.classes, **meta)
        if va["accuracy"] > best:
            best = va["accuracy"]
            save_checkpoint(out / "best.safetensors", model, train.classes, **meta)
            confusion_png(va["confusion_matrix"], train.classes, out / "confusion.png")
        _write_history(history, out / "history.csv")
        training_curves(history, out / "curves.png")
    done = {"status": "complete", "epochs": epoch, "train_minutes": round(elapsed / 60, 2)}
    write_text(out / "status.json", json.dumps(done) + "\n")
    return {"best": max(history, key=lambda r: r["val_accuracy"]), "last": history[-1]}


def _write_history(history: list[dict], path: Path) -> None:
    lines = [",".join(HISTORY_FIELDS)]
    for r in history:
        lines.append(
            ",".join(
                f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]) for k in HISTORY_FIELDS
            )
        )
    write_text(path, "\n".join(lines) + "\n")


def load_classifier(path: str | Path):
    """(model in eval mode, classes, metadata) of a classifier checkpoint."""
    return load_checkpoint(path, task="classification")


def top_k(probs: np.ndarray, classes: ClassTable, k: int) -> list[list[tuple[str, float]]]:
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(classes.names[j], float(p[j])) for j in row] for p, row in zip(probs, order)]


def patch_map(model, rgb: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Label every pixel of a large image with its patch's predicted class: the classifier as
    a coarse segmenter. Pixels right/below the last whole patch get ``IGNORE_INDEX``."""
    s = model.input_size
    h, w = rgb.shape[:2]
    rows, cols = h // s, w // s
    if not rows or not cols:
        raise AerialSegError(f"image of {w}x{h} is smaller than one {s}x{s} patch")
    tiles = rgb[: rows * s, : cols * s].reshape(rows, s, cols, s, 3).swapaxes(1, 2)
    pred = predict_proba(model, tiles.reshape(-1, s, s, 3), batch_size).argmax(1)
    labels = np.full((h, w), IGNORE_INDEX, dtype=np.uint8)
    grid = pred.reshape(rows, cols).astype(np.uint8)
    labels[: rows * s, : cols * s] = np.kron(grid, np.ones((s, s), dtype=np.uint8))
    return labels
