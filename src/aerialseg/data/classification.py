"""Image-classification datasets, all held in memory as one uint8 array of equal-sized images:

- ``cifar100``: the ``cifar-100-python/`` pickles of the ISLR lab (see :mod:`.cifar`);
- ``imagefolder``: one sub-folder per class (optionally under ``train/`` and ``test/``);
- ``landcover``: square patches cut from a segmentation dataset, labelled by their majority
  class when it covers at least ``min_share`` of the patch, split by image as the U-Net is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..classes import DUBAI, ClassTable
from ..config import ClassifyConfig
from ..errors import AerialSegError
from ..io.images import IMAGE_SUFFIXES, natural_key, read_image
from .cifar import cifar_root, read_cifar100
from .imageset import ImageSet, class_table, concat, fit_square
from .segmentation import check_labelled, load_dataset
from .splits import holdout, split_images

KINDS = ("auto", "cifar100", "imagefolder", "landcover")


def _class_dirs(root: Path) -> list[Path]:
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: natural_key(d.name),
    )


def read_image_folder(
    root: str | Path, size: int, names: Sequence[str] | None = None, progress: bool = False
) -> ImageSet:
    """Every image under ``root/<class>/``, centre-cropped and resized to ``size``."""
    root = Path(root)
    dirs = _class_dirs(root)
    found = [d.name for d in dirs]
    if names is None and len(found) == 1:  # a class folder given as the root, most likely
        raise AerialSegError(
            f"{root}: only one class folder ({found[0]}); a classifier needs at least two "
            f"(expected {root}/<class name>/*.jpg)"
        )
    names = list(names) if names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise AerialSegError(f"{root}: class folders {unknown} are not classes of this model")
    files = [
        (f, names.index(d.name))
        for d in dirs
        for f in sorted(d.iterdir(), key=lambda p: natural_key(p.name))
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and not f.is_dir()
    ]
    for f, _ in files:
        if not f.is_file():  # a broken link or a link loop: say so rather than skip it
            raise AerialSegError(f"{f}: broken symbolic link or not a regular file")
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


def load_data(ds: dict, which: Sequence[str], progress: bool = False) -> dict[str, ImageSet]:
    """The named parts (``train``, ``val``, ``test``, ``all``) of the dataset described by
    ``ds`` (the ``dataset`` entry of a run's metadata)."""
    root, kind, size = Path(ds["root"]), ds["kind"], ds["size"]
    out: dict[str, ImageSet] = {}
    if kind == "cifar100":
        full = read_cifar100(root, "train", ds["label"])
        tr, va = holdout(len(full), ds["val_fraction"], ds["seed"])
        parts = {"train": lambda: full.subset(tr), "val": lambda: full.subset(va)}
        parts["test"] = lambda: read_cifar100(root, "test", ds["label"])
        parts["all"] = lambda: concat([full, parts["test"]()])
    elif kind == "imagefolder":
        train_dir, test_dir = folder_parts(root)
        full = read_image_folder(train_dir, size, ds.get("names"), progress)
        tr, va = holdout(len(full), ds["val_fraction"], ds["seed"])
        parts = {"train": lambda: full.subset(tr), "val": lambda: full.subset(va)}
        if test_dir is not None:
            test = read_image_folder(test_dir, size, full.classes.names, progress)
            parts["test"], parts["all"] = (lambda: test), (lambda: concat([full, test]))
        else:
            parts["all"] = lambda: full
    elif kind == "landcover":
        mask_classes = ClassTable.from_dict(ds["mask_classes"])
        samples = load_dataset(root, mask_classes, progress=progress)
        check_labelled(samples, mask_classes, str(root))
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
