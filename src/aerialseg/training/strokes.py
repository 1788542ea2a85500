"""What a fine-tune learns from: the user's labelled images, crops around their strokes,
the teacher's labels (the parent's confident pixels, or the student's own when it
self-trains), balanced class weights, and replay crops of the original data."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..classes import IGNORE_INDEX, ClassTable, match_names
from ..config import FinetuneConfig
from ..data.segmentation import (
    Batches,
    Sample,
    class_pixel_counts,
    dihedral,
    find_pairs,
    load_sample,
    pair_folders,
)
from ..errors import AerialSegError


def load_labelled(
    images: str | Path, labels: str | Path, classes: ClassTable, min_size: int = 0, vector=None
) -> list[Sample]:
    """The user's images with their sparse labels, paired by file stem. Refuses labels of
    another size than their image, values that are no class, and labels with no pixel.
    ``vector`` (:class:`~aerialseg.gis.vector_labels.VectorOptions`): ``labels`` is a vector
    file, burned onto each georeferenced image it overlaps."""
    if vector is not None:
        from ..gis.vector_labels import vector_samples

        return vector_samples(images, labels, classes, vector, min_size)
    images, labels = Path(images), Path(labels)
    for folder, flag in ((images, "--images"), (labels, "--labels")):
        if not folder.is_dir():
            raise AerialSegError(f"{folder}: no such folder ({flag})")
    pairs = pair_folders(images, labels, what="label image")
    if not pairs:
        raise AerialSegError(f"{images}: no images (with labels in {labels}) found")
    samples = [load_sample(p, classes, min_size, strict=True) for p in pairs]
    if not any((s.labels != IGNORE_INDEX).any() for s in samples):
        raise AerialSegError(
            f"{labels}: no labelled pixel in {len(samples)} label image(s) (class indices "
            f"0-{len(classes) - 1}, or class colours; 255 / other colours are unlabelled)"
        )
    return samples


def teacher_labels(
    model,
    samples: Sequence[Sample],
    classes,
    cfg: FinetuneConfig,
    device: str,
    probs=None,
    trust: float = 0.0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The teacher's label where it is confident (probability >= ``cfg.confidence``) and the
    user left the pixel unlabelled; 255 elsewhere. Predicted as ``segment`` does, unless
    ``probs`` (one (H, W, C) array per sample) already holds the probabilities.

    ``trust``: a class the teacher predicts is kept only where the strokes do not contradict
    it, i.e. where, on the stroked pixels it gives that class, it is right at least this often
    (or it gives it on too few of them to tell). Why: in a new place the parent's confident
    labels are mostly its errors (they cost 0.3 of the accuracy), yet a class the user never
    painted, because the map had it right, must not be forgotten (0.5 % strokes without a
    water stroke lost every water pixel). Returns the labels and, per image, which classes
    were kept."""
    from ..inference.segmenter import Segmenter

    seg = Segmenter(model, classes, precision=cfg.precision, device=device)
    preds, sure = [], []
    for i, s in enumerate(samples):
        probs_i = probs[i] if probs is not None else seg.predict_proba(s.image)
        if probs_i.shape[:2] != s.labels.shape:
            raise ValueError(f"{s.id}: parent probabilities of another size than the image")
        preds.append(probs_i.argmax(-1).astype(np.uint8))
        sure.append(probs_i.max(-1) >= cfg.confidence)
    kept = uncontradicted(samples, preds, len(classes), trust)
    out = [
        np.where(confident & (s.labels == IGNORE_INDEX) & k[pred], pred, IGNORE_INDEX)
        for s, pred, confident, k in zip(samples, preds, sure, kept)
    ]
    return [o.astype(np.uint8) for o in out], kept


MIN_EVIDENCE = 100  # stroked pixels (half a small disc) before a precision counts


def uncontradicted(samples, preds, num_classes: int, trust: float) -> list[np.ndarray]:
    """Per image, per class: whether the prediction is right on at least ``trust`` of the
    image's stroked pixels where it gives that class (True with fewer than MIN_EVIDENCE such
    pixels). Judged image by image, because a model can be right about a class in one scene
    and wrong about it in another (water in a port, "water" on a suburb's shadows); an image
    with (almost) no strokes of its own is judged by all the strokes together."""
    counts = [_said_right(s, p, num_classes) for s, p in zip(samples, preds)]
    pooled = sum(c[0] for c in counts), sum(c[1] for c in counts)
    out = []
    for said, right in counts:
        if said.sum() < MIN_EVIDENCE:
            said, right = pooled
        out.append((said < MIN_EVIDENCE) | (right >= trust * said))
    return out


def _said_right(sample: Sample, pred: np.ndarray, num_classes: int):
    painted = sample.labels != IGNORE_INDEX
    p, y = pred[painted], sample.labels[painted]
    said = np.bincount(p, minlength=num_classes)[:num_classes].astype(np.float64)
    return said, np.bincount(p[p == y], minlength=num_classes)[:num_classes].astype(np.float64)


class StrokeCrops:
    """Crops of the labelled images, each around a random labelled pixel (so every crop
    teaches something), images drawn in proportion to their labelled pixels; a random
    flip/rotation of image, labels and teacher labels alike. Once self-training gives
    teacher labels everywhere, every other crop centres on any pixel with a teacher label."""

    def __init__(self, samples: Sequence[Sample], teacher: Sequence[np.ndarray], patch: int):
        self.samples, self.teacher, self.patch = list(samples), list(teacher), patch
        self.pools = [_pool([np.flatnonzero(s.labels.ravel() != IGNORE_INDEX) for s in samples])]

    def set_teacher(self, teacher: Sequence[np.ndarray]) -> None:
        """The student's own confident labels (self-training): the crops reach the parts of
        the images no stroke touched."""
        self.teacher = list(teacher)
        where = [np.flatnonzero(t.ravel() != IGNORE_INDEX) for t in self.teacher]
        if sum(map(len, where)):
            self.pools = self.pools[:1] + [_pool(where)]

    def batch(self, n: int, rng: np.random.Generator):
        p = self.patch
        xs, ys, ts = [], [], []
        for j in range(n):
            where, weights = self.pools[j % len(self.pools)]
            i = int(rng.choice(len(self.samples), p=weights))
            s, t = self.samples[i], self.teacher[i]
            h, w = s.labels.shape
            cy, cx = divmod(int(where[i][rng.integers(len(where[i]))]), w)
            y = int(np.clip(cy - rng.integers(p), 0, max(0, h - p)))
            x = int(np.clip(cx - rng.integers(p), 0, max(0, w - p)))
            k = int(rng.integers(8))
            crop = (slice(y, y + p), slice(x, x + p))
            xs.append(pad(dihedral(s.image[crop], k), p, 0))
            ys.append(pad(dihedral(s.labels[crop], k), p, IGNORE_INDEX))
            ts.append(pad(dihedral(t[crop], k), p, IGNORE_INDEX))
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float()
        return x, torch.from_numpy(np.stack(ys)).long(), torch.from_numpy(np.stack(ts)).long()


def _pool(where: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Centre pixels per image, and each image's chance: in proportion to its pixels."""
    counts = np.array([len(w) for w in where], dtype=np.float64)
    return where, counts / counts.sum()


def pad(a: np.ndarray, p: int, value) -> np.ndarray:
    """An image smaller than the crop, padded to it (padding is ignored by the losses)."""
    if a.shape[0] == p and a.shape[1] == p:
        return a
    widths = [(0, p - a.shape[0]), (0, p - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, widths, constant_values=value)


def balanced_weights(samples: Sequence[Sample], num_classes: int) -> torch.Tensor:
    """Per-class weights making each labelled class count the same in the stroke loss."""
    counts = class_pixel_counts(samples, num_classes).astype(np.float64)
    present = counts > 0
    w = np.where(present, counts.sum() / np.maximum(counts, 1) / present.sum(), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def load_replay(
    root: str | Path, classes: ClassTable, cfg: FinetuneConfig, rng, data_classes=None
) -> Batches:
    """Crops of a random choice of ``cfg.replay_images`` images of the original data. Its
    masks are read with ``data_classes`` (the parent's table) and their labels renamed to
    ``classes`` by class name; a class the user's table lacks is unlabelled there."""
    data_classes = data_classes or classes
    pairs = find_pairs(root)
    chosen = sorted(rng.choice(len(pairs), size=min(cfg.replay_images, len(pairs)), replace=False))
    samples = [load_sample(pairs[i], data_classes, cfg.patch_size) for i in chosen]
    if data_classes is not classes:
        lut = np.full(256, IGNORE_INDEX, np.uint8)
        for new, old in enumerate(match_names(classes, data_classes)):
            if old is not None:
                lut[old] = new
        samples = [dataclasses.replace(s, labels=lut[s.labels]) for s in samples]
    return Batches(samples, cfg.patch_size, cfg.replay_batch, augment=True)
