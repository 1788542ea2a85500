"""Segmentation datasets: finding image/mask pairs, decoding them, sampling training batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..classes import IGNORE_INDEX, ClassTable, to_hex
from ..errors import AerialSegError
from ..gis.raster_masks import read_mask_raster
from ..io.images import IMAGE_SUFFIXES, index_labels, natural_key, read_image, read_mask
from .augment import apply_colour, class_mix, colour_draws, crop_box, resize_crop


@dataclass(frozen=True)
class Pair:
    """An image and its mask. ``id`` is ``group/stem`` (e.g. ``Tile 1/image_part_001``)."""

    id: str
    group: str
    image: Path
    mask: Path


@dataclass
class Sample:
    """A decoded image (H, W, 3) uint8 with its labels (H, W) uint8 (255 = ignore)."""

    id: str
    group: str
    image: np.ndarray
    labels: np.ndarray
    unknown_pixels: int = 0

    @property
    def area(self) -> int:
        return self.labels.size

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    def window(self, y: int, x: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        """The (image, labels) crop at row y, column x (what a streamed sample reads)."""
        return self.image[y : y + side, x : x + side], self.labels[y : y + side, x : x + side]

    def stats(self) -> PixelStats:
        return PixelStats.of(self.image, self.labels)

    def loaded(self) -> Sample:
        """The decoded sample (a streamed one reads itself whole; this one is)."""
        return self


@dataclass
class PixelStats:
    """Sums over an image's pixels: per-channel sum and sum of squares, count of each label
    value (255: ignored). Streamed samples add them up block by block."""

    total: np.ndarray
    squares: np.ndarray
    labels: np.ndarray  # (256,) int64

    @classmethod
    def of(cls, image: np.ndarray, labels: np.ndarray) -> PixelStats:
        flat = image.reshape(-1, 3)
        return cls(
            flat.sum(0, dtype=np.float64),
            np.square(flat, dtype=np.float64).sum(0),
            np.bincount(labels.ravel(), minlength=256),
        )

    def __add__(self, other: PixelStats) -> PixelStats:
        return PixelStats(
            self.total + other.total, self.squares + other.squares, self.labels + other.labels
        )


def _files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    except OSError as e:
        raise AerialSegError(f"{folder}: cannot list the folder ({e.strerror or e})") from None
    for p in entries:
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith(".") or p.is_dir():
            continue
        if not p.is_file():  # a broken link or a link loop: say so rather than skip it
            raise AerialSegError(f"{p}: broken symbolic link or not a regular file")
        if p.stem in found:
            raise AerialSegError(f"{p}: two files named {p.stem}.* in {folder}")
        found[p.stem] = p
    return found


def list_images(folder: Path) -> dict[str, Path]:
    """The images of ``folder`` by file stem (two of one stem, or a broken link: an error)."""
    return _files(folder)


def _pairs_in(folder: Path, group: str) -> list[Pair]:
    for have, lack in (("images", "masks"), ("masks", "images")):
        if not (folder / lack).is_dir():
            raise AerialSegError(
                f"{folder}: has {have}/ but no {lack}/ folder (a dataset needs images/ and "
                f"masks/ side by side, paired by file name)"
            )
    return pair_folders(folder / "images", folder / "masks", group)


def pair_folders(
    image_dir: Path, mask_dir: Path, group: str = "", what: str = "mask"
) -> list[Pair]:
    """The images of ``image_dir`` with the masks of ``mask_dir`` of the same stem; an image
    without its mask, or the other way round, is an error (``what`` names the masks)."""
    images, masks = _files(image_dir), _files(mask_dir)
    for stem in images.keys() - masks.keys():
        raise AerialSegError(f"{images[stem]}: image has no {what} in {mask_dir}")
    for stem in masks.keys() - images.keys():
        raise AerialSegError(f"{masks[stem]}: {what} has no image in {image_dir}")
    return [
        Pair(f"{group}/{stem}" if group else stem, group, images[stem], masks[stem])
        for stem in sorted(images, key=natural_key)
    ]


def find_pairs(root: str | Path) -> list[Pair]:
    """Find image/mask pairs under ``root``, paired by file stem.

    Two layouts: ``root/images`` + ``root/masks`` (one group), or the Kaggle layout
    ``root/<Tile N>/images`` + ``root/<Tile N>/masks`` where each sub-folder is a group.
    """
    root = Path(root)
    if not root.exists():
        raise AerialSegError(f"{root}: no such data folder")
    if not root.is_dir():
        raise AerialSegError(f"{root}: not a folder")
    if (root / "images").is_dir() or (root / "masks").is_dir():
        pairs = _pairs_in(root, "")
    else:
        groups = [
            d
            for d in sorted(root.iterdir(), key=lambda p: natural_key(p.name))
            if d.is_dir() and ((d / "images").is_dir() or (d / "masks").is_dir())
        ]
        pairs = [p for d in groups for p in _pairs_in(d, d.name)]
    if not pairs:
        raise AerialSegError(
            f"{root}: no image/mask pairs found (expected images/ + masks/, "
            "or 'Tile N/images' + 'Tile N/masks' sub-folders)"
        )
    return pairs


def read_labels(path: Path, classes: ClassTable, strict: bool = False) -> tuple[np.ndarray, int]:
    """A mask as (labels (H, W) uint8, 255 = ignored; pixels of no class). Masks may be
    partial (sparse labels): a colour mask's pixels of a colour outside the class table, and
    255 in a mask of class indices (a single-band PNG or GeoTIFF), are unlabelled. ``strict``
    refuses index values that are no class (see :func:`index_labels`)."""
    geo = read_mask_raster(path, classes, strict=strict)  # one-band GeoTIFF: indices or colours
    if geo is not None:
        return geo
    mask = read_mask(path)
    if mask.ndim == 2:
        return index_labels(mask, len(classes), path, strict)
    return classes.encode(mask)


def load_sample(pair: Pair, classes: ClassTable, min_size: int = 0, strict: bool = False) -> Sample:
    image = read_image(pair.image, strict=True)
    labels, unknown = read_labels(pair.mask, classes, strict)
    if labels.shape != image.shape[:2]:
        raise AerialSegError(
            f"{pair.mask}: mask is {labels.shape[1]}x{labels.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    if min(image.shape[:2]) < min_size:
        raise AerialSegError(
            f"{pair.image}: {image.shape[1]}x{image.shape[0]} is smaller than the "
            f"{min_size}x{min_size} patch size"
        )
    return Sample(pair.id, pair.group, image, labels, unknown)


def load_dataset(
    root: str | Path, classes: ClassTable, min_size: int = 0, progress: bool = False
) -> list[Sample]:
    """Find and decode every pair under ``root`` (see :func:`find_pairs`)."""
    pairs = find_pairs(root)
    if progress:
        from tqdm import tqdm

        pairs = tqdm(pairs, desc="reading images", unit="img", leave=False, disable=None)
    return [load_sample(p, classes, min_size) for p in pairs]


def check_labelled(samples: Sequence[Sample], classes: ClassTable, what: str) -> None:
    """Refuse images whose masks have no pixel of any class colour: nothing to learn from or
    score against (all their pixels would be ignored)."""
    if not samples or any(s.stats().labels[:IGNORE_INDEX].any() for s in samples):
        return
    table = ", ".join(f"{n} {to_hex(c)}" for n, c in zip(classes.names, classes.colors))
    raise AerialSegError(
        f"{what}: no mask pixel has a class colour ({len(samples)} masks, e.g. "
        f"{samples[0].id}); the classes are {table}"
    )


def unknown_pixel_report(samples: Sequence[Sample]) -> str | None:
    """One line about pixels of no known class colour, or None when there are none."""
    bad = [s for s in samples if s.unknown_pixels]
    if not bad:
        return None
    total = sum(s.unknown_pixels for s in bad)
    share = total / sum(s.area for s in samples)
    worst = max(bad, key=lambda s: s.unknown_pixels)
    return (
        f"{total:,} mask pixels ({share:.2%}) in {len(bad)} masks have no class colour and are "
        f"ignored (most: {worst.id}, {worst.unknown_pixels:,})"
    )


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of the square (k in 0..7) applied to the first two axes."""
    a = np.rot90(a, k % 4)
    return a[:, ::-1] if k >= 4 else a


def mean_std(samples: Sequence[Sample]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of all training pixels, on the 0-255 scale."""
    n = sum(s.area for s in samples)
    stats = [s.stats() for s in samples]
    total = sum(st.total for st in stats)
    sq = sum(st.squares for st in stats)
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean**2, 1e-6))
    return mean.tolist(), std.tolist()


def class_pixel_counts(samples: Sequence[Sample], num_classes: int) -> np.ndarray:
    counts = np.zeros(256, dtype=np.int64)
    for s in samples:
        counts += s.stats().labels
    return counts[:num_classes]


@dataclass
class Recipe:
    """What one training batch is made of: the crops (sample index, row, column, side,
    flip/rotation) and the colour and jitter draws. Drawing recipes is cheap and needs only
    the images' sizes; making the batch reads the pixels (in memory, or from disk in a
    DataLoader worker). Both draw from one generator in the order the sampler always has."""

    crops: list[tuple[int, int, int, int, int]]
    colour: dict | None
    jitter: np.ndarray | None
    mix: list[tuple[int, int, np.ndarray]] | None = None  # (patch, source patch, priorities)


class Batches:
    """Training batches as float tensors: images (N, 3, H, W) on the 0-255 scale, labels (N, H, W).

    ``mode="random-crop"``: each patch is a random crop of a random image, images drawn in
    proportion to their area, so every pixel (borders included) is equally likely to be seen.
    ``mode="patches"``: the fixed patches themselves (the seed's way), reshuffled every epoch.
    ``augment`` applies a random flip/rotation; ``jitter`` scales brightness and contrast by
    up to +-jitter; ``zoom`` and ``color`` are the scale and colour augmentations of
    :mod:`.augment` (random-crop sampling only); ``classmix``, the share of patches that get
    half the classes of another patch of the batch pasted over them (:func:`.augment.class_mix`).
    ``shards``: the number of processes that share an epoch (DDP); each draws its own 1/shards
    of the epoch's patches.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        patch_size: int,
        batch_size: int,
        mode: str = "random-crop",
        augment: bool = True,
        jitter: float = 0.0,
        patches_per_epoch: int | None = None,
        shards: int = 1,
        zoom: float = 1.0,
        color: float = 0.0,
        classmix: float = 0.0,
    ):
        if mode not in ("random-crop", "patches"):
            raise AerialSegError(f"unknown sampling {mode!r}: use random-crop or patches")
        self.samples = list(samples)
        self.patch, self.batch, self.mode = patch_size, batch_size, mode
        self.augment, self.jitter, self.zoom, self.color = augment, jitter, zoom, color
        self.classmix = classmix
        area = np.array([s.area for s in self.samples], dtype=np.float64)
        self.weights = area / area.sum()
        default = len(self.samples) if mode == "patches" else int(area.sum() // patch_size**2)
        self.patches_per_epoch = -(-(patches_per_epoch or max(batch_size, default)) // shards)

    def __len__(self) -> int:
        return -(-self.patches_per_epoch // self.batch)

    def epoch(
        self, rng: np.random.Generator, workers: int = 0, pin_memory: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches; ``workers`` > 0: made by that many DataLoader processes, in
        the same order, equal to those made here."""
        if workers == 0:
            for recipe in self.plans(rng):
                yield self.make(recipe)
            return
        from torch.utils.data import DataLoader

        recipes = list(self.plans(rng))  # the draws: here, in order; the pixels: in workers
        loader = DataLoader(
            _Made(self, recipes), batch_size=None, num_workers=workers, pin_memory=pin_memory
        )
        yield from loader

    def plans(self, rng: np.random.Generator) -> Iterator[Recipe]:
        n = self.patches_per_epoch
        if self.mode == "patches":
            order = np.concatenate(
                [rng.permutation(len(self.samples)) for _ in range(-(-n // len(self.samples)))]
            )[:n]
        else:
            order = rng.choice(len(self.samples), size=n, p=self.weights)
        for start in range(0, n, self.batch):
            crops = []
            for i in order[start : start + self.batch]:
                y, x, side = crop_box(*self.samples[i].shape, self.patch, self.zoom, rng)
                k = int(rng.integers(8)) if self.augment else 0
                crops.append((int(i), y, x, side, k))
            draws = colour_draws(len(crops), rng, self.color)
            jitter = None
            if self.jitter:
                jitter = rng.uniform(1 - self.jitter, 1 + self.jitter, (2, len(crops), 1, 1, 1))
            yield Recipe(crops, draws, jitter, self._mix_draws(len(crops), rng))

    def _mix_draws(self, n: int, rng: np.random.Generator):
        """ClassMix's draws, last and only when it is on: without it a run draws as before."""
        if not self.classmix or n < 2:
            return None
        mix = []
        for j in range(n):  # drawn for every patch, mixed or not: a fixed number of draws
            source = (j + 1 + int(rng.integers(n - 1))) % n  # any other patch of the batch
            priority = rng.random(256)
            if rng.random() < self.classmix:
                mix.append((j, source, priority))
        return mix

    def make(self, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
        n, p = len(recipe.crops), self.patch
        images = np.empty((n, p, p, 3), dtype=np.uint8)
        labels = np.empty((n, p, p), dtype=np.uint8)
        for j, (i, y, x, side, k) in enumerate(recipe.crops):
            img, lab = resize_crop(*self.samples[i].window(y, x, side), p)
            images[j], labels[j] = dihedral(img, k), dihedral(lab, k)
        if recipe.mix:
            src_images, src_labels = images.copy(), labels.copy()  # paste unmixed patches
            for j, q, priority in recipe.mix:
                images[j], labels[j] = class_mix(
                    images[j], labels[j], src_images[q], src_labels[q], priority
                )
        x = torch.from_numpy(apply_colour(images, recipe.colour)).permute(0, 3, 1, 2).float()
        if recipe.jitter is not None:
            x = self._jitter(x, recipe.jitter)
        return x, torch.from_numpy(labels).long()

    @staticmethod
    def _jitter(x: torch.Tensor, draws: np.ndarray) -> torch.Tensor:
        b, c = torch.from_numpy(draws).float()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * c + mean * b).clamp_(0, 255)


class _Made(torch.utils.data.Dataset):
    """Batch i of an epoch's recipes, made where it is asked for (a DataLoader worker)."""

    def __init__(self, batches: Batches, recipes: list[Recipe]):
        self.batches, self.recipes = batches, recipes

    def __len__(self) -> int:
        return len(self.recipes)

    def __getitem__(self, i: int):
        return self.batches.make(self.recipes[i])
