"""Training/validation splits. Images of one tile are neighbours, so the honest split keeps
whole images (or whole tiles) on one side; the seed's random patch split is kept only to
compare with the paper."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ..errors import AerialSegError
from ..io.images import natural_key
from .segmentation import Sample


def split_images(
    samples: Sequence[Sample],
    val_fraction: float = 0.2,
    seed: int = 0,
    val_groups: Sequence[str] = (),
    val_ids: Sequence[str] = (),
) -> tuple[list[Sample], list[Sample]]:
    """Image-level split: no image contributes to both sides.

    With ``val_groups``/``val_ids`` those are held out; otherwise ``val_fraction`` of the images
    of every group (tile) are drawn with ``seed``, so each tile is represented on both sides.
    """
    if val_groups or val_ids:
        groups = {s.group for s in samples}
        ids = {s.id for s in samples}
        for g in val_groups:
            if g not in groups:
                raise AerialSegError(f"held-out tile {g!r} is not in the data ({sorted(groups)})")
        for i in val_ids:
            if i not in ids:
                raise AerialSegError(f"held-out image {i!r} is not in the data")
        held = {s.id for s in samples if s.group in set(val_groups) or s.id in set(val_ids)}
    else:
        if not 0 < val_fraction < 1:
            raise AerialSegError(f"validation fraction must be between 0 and 1, not {val_fraction}")
        rng = np.random.default_rng(seed)
        by_group: dict[str, list[str]] = defaultdict(list)
        for s in samples:
            by_group[s.group].append(s.id)
        held = set()
        for group in sorted(by_group):
            ids = sorted(by_group[group], key=natural_key)
            n = int(round(val_fraction * len(ids)))
            held.update(rng.permutation(ids)[:n].tolist())
        if not held and len(samples) >= 2:  # tiny groups: still hold out one image overall
            held = {rng.choice([s.id for s in samples])}
    train = [s for s in samples if s.id not in held]
    val = [s for s in samples if s.id in held]
    if not train or not val:
        raise AerialSegError(
            f"split leaves {len(train)} training and {len(val)} validation images; need both"
        )
    return train, val


def grid_patches(samples: Sequence[Sample], size: int) -> list[Sample]:
    """The seed's patching: crop each image to a multiple of ``size`` (top-left), then cut it
    into non-overlapping ``size`` x ``size`` patches."""
    out = []
    for s in samples:
        rows, cols = s.labels.shape[0] // size, s.labels.shape[1] // size
        for r in range(rows):
            for c in range(cols):
                ys, xs = slice(r * size, (r + 1) * size), slice(c * size, (c + 1) * size)
                out.append(Sample(f"{s.id}@{r},{c}", s.group, s.image[ys, xs], s.labels[ys, xs]))
    return out


def split_patches_random(
    samples: Sequence[Sample], size: int = 256, val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """The seed's split: a random 80/20 split of grid patches. Neighbouring patches of one image
    land on both sides, so validation scores are optimistic - kept only for comparison."""
    patches = grid_patches(samples, size)
    if len(patches) < 2:
        raise AerialSegError(f"need at least 2 patches of {size}x{size} for a patch split")
    order = np.random.default_rng(seed).permutation(len(patches))
    n_val = max(1, int(round(val_fraction * len(patches))))
    return [patches[i] for i in order[n_val:]], [patches[i] for i in order[:n_val]]


def holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: a seeded shuffle, the last ``fraction`` held out."""
    if not 0 < fraction < 1:
        raise AerialSegError(f"validation fraction must be between 0 and 1, not {fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 1:
        raise AerialSegError(f"{n} images are too few to hold out a validation set")
    return np.sort(order[:-n_val]), np.sort(order[-n_val:])
