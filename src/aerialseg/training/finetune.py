"""Fine-tuning a segmentation model on a user's sparse labels (brush strokes), in minutes.

Why a loop of its own rather than :func:`.loop.fit`: ``fit`` trains epochs into a run folder
(config, status, history, curves, best/last, resumable state) and validates every epoch; a
fine-tune is a single ~2-minute run bounded by the clock, with no validation set and nothing
to resume, ending in one checkpoint file, and each step mixes three kinds of target. What it
shares with training is reused: the schedule (:func:`.segmentation.lr_at`), the crops'
flips/rotations, :class:`~aerialseg.data.segmentation.Batches` for replay, the ignore index.

What keeps two images' worth of strokes from wrecking the model (measured in
benchmarks/finetune_gain.py):

- batch norm keeps the parent's statistics (its layers stay in eval mode): batches cut from
  one or two images would replace the statistics of the whole training set with theirs
  (``--adapt-bn 1`` does that on purpose: with the unet-effl0 parent, accuracy on the other
  images of the painted tile fell from 0.85 to 0.48);
- a small learning rate (1e-5): at 1e-4, with every variant tried at that rate, the
  unet-effl0 parent lost 0.03-0.04 accuracy on its own training tiles;
- the labelled classes are weighed equally: strokes drawn where the model is wrong are mostly
  of the classes it misses;
- self-distillation: unlabelled pixels the parent was confident about keep its label;
- replay (``--data-replay``): crops of the original training data, with their labels.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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
from ..inference.familiarity import KEY as FAMILIARITY
from ..inference.familiarity import images_familiarity, merge_reference
from ..io.files import file_digest
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.retarget import retarget
from ..runtime import autocast, channels_last, prepare, resolve_device, resolve_precision
from .segmentation import lr_at


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
    model, samples: Sequence[Sample], classes, cfg: FinetuneConfig, device: str, probs=None
):
    """The parent's label where it is confident (probability >= ``cfg.confidence``) and the
    user left the pixel unlabelled; 255 elsewhere. Predicted as ``segment`` does, unless
    ``probs`` (one (H, W, C) array per sample) already holds the parent's probabilities."""
    from ..inference.segmenter import Segmenter

    seg = Segmenter(model, classes, precision=cfg.precision, device=device)
    out = []
    for i, s in enumerate(samples):
        probs_i = probs[i] if probs is not None else seg.predict_proba(s.image)
        if probs_i.shape[:2] != s.labels.shape:
            raise ValueError(f"{s.id}: parent probabilities of another size than the image")
        pseudo = probs_i.argmax(-1).astype(np.uint8)
        pseudo[(probs_i.max(-1) < cfg.confidence) | (s.labels != IGNORE_INDEX)] = IGNORE_INDEX
        out.append(pseudo)
    return out


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
            xs.append(_pad(dihedral(s.image[crop], k), p, 0))
            ys.append(_pad(dihedral(s.labels[crop], k), p, IGNORE_INDEX))
            ts.append(_pad(dihedral(t[crop], k), p, IGNORE_INDEX))
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float()
        return x, torch.from_numpy(np.stack(ys)).long(), torch.from_numpy(np.stack(ts)).long()


def _pool(where: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Centre pixels per image, and each image's chance: in proportion to its pixels."""
    counts = np.array([len(w) for w in where], dtype=np.float64)
    return where, counts / counts.sum()


def _pad(a: np.ndarray, p: int, value) -> np.ndarray:
    """An image smaller than the crop, padded to it (padding is ignored by the losses)."""
    if a.shape[0] == p and a.shape[1] == p:
        return a
    widths = [(0, p - a.shape[0]), (0, p - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, widths, constant_values=value)


def freeze(model, what: str) -> None:
    """``requires_grad=False`` for the parameters kept as they are (``what``: see
    FinetuneConfig.freeze), so no gradient is computed for them (a frozen encoder also
    saves its backward pass)."""
    if what == "none":
        return
    if what == "encoder":
        if not hasattr(model, "encoder_parameters"):
            raise AerialSegError(
                f"--freeze encoder: a {model.name} model has no pretrained encoder (unet-effl0 has)"
            )
        frozen = {id(p) for p in model.encoder_parameters()}
    else:  # all-but-head
        frozen = {id(p) for p in model.parameters()} - {id(p) for p in model.head.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)


@torch.no_grad()
def adapt_batchnorm(model, samples, share, patch, rng, device, batches=8, batch_size=4) -> None:
    """Batch-norm statistics moved ``share`` of the way from the parent's towards the user's
    imagery: measured on random crops of the whole images (labelled or not), as test-time
    adaptation to new imagery does ("AdaBN"). New imagery differs from the training data in
    colour and texture statistics first; the weights need no labels to follow them."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    parent = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the crops
        m.train()
    for _ in range(batches):
        crops = []
        for i in rng.integers(len(samples), size=batch_size):
            image = samples[i].image
            h, w = image.shape[:2]
            y, x = rng.integers(max(1, h - patch + 1)), rng.integers(max(1, w - patch + 1))
            crops.append(_pad(image[y : y + patch, x : x + patch], patch, 0))
        model(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().to(device))
    for m, (mean, var, momentum) in zip(norms, parent):
        m.running_mean.mul_(share).add_(mean, alpha=1 - share)
        m.running_var.mul_(share).add_(var, alpha=1 - share)
        m.momentum = momentum
    model.eval()


def balanced_weights(samples: Sequence[Sample], num_classes: int) -> torch.Tensor:
    """Per-class weights making each labelled class count the same in the stroke loss."""
    counts = class_pixel_counts(samples, num_classes).astype(np.float64)
    present = counts > 0
    w = np.where(present, counts.sum() / np.maximum(counts, 1) / present.sum(), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def pick_recipe(name: str, model, meta: dict, samples: Sequence[Sample]) -> tuple[str, str]:
    """The recipe for ``samples`` and one line saying why. ``auto``: new-place where the
    images lie farther from the parent's training imagery than its own threshold (the
    distance segment's warning uses), else correction."""
    if name != "auto":
        return name, f"recipe {name} (as asked)"
    near = images_familiarity(model, meta, [s.image for s in samples])
    if near is None:
        return "correction", (
            "recipe correction: the model carries no reference of its training imagery to "
            "tell a new place by (--recipe new-place to learn one)"
        )
    d, limit = near
    if d > limit:
        return "new-place", (
            f"recipe new-place: the images look unlike the model's training imagery (feature "
            f"distance {d:.2f}, above {limit:.2f})"
        )
    return "correction", (
        f"recipe correction: the images look like the model's training imagery (feature "
        f"distance {d:.2f}, within {limit:.2f}; --recipe new-place to learn them anew)"
    )


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


def finetune(
    parent: str | Path,
    images: str | Path,
    labels: str | Path,
    out: str | Path,
    cfg: FinetuneConfig | None = None,
    data_replay: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_progress: Callable[[float, str], None] | None = None,
    *,
    parent_probs: Sequence[np.ndarray] | None = None,
    vector=None,
    classes: ClassTable | None = None,
) -> dict:
    """Fine-tune checkpoint ``parent`` on the labelled pixels of ``images``/``labels`` and
    write the new checkpoint to ``out``. Returns what the checkpoint records about the run.
    ``on_progress(fraction, message)`` is called at each stage and step (the app's bar).

    ``parent_probs``: the parent's (H, W, C) probabilities for the images, in the order they
    pair (by file name), where the caller has them already (the app has segmented the
    image it corrects; the benchmark reuses them across runs) - saves predicting them again.
    ``vector``: ``labels`` is a vector file, read so (see :func:`load_labelled`).
    ``classes``: the user's class table, new classes included (default: the parent's)."""
    say = on_progress or (lambda fraction, message: None)
    cfg = cfg or FinetuneConfig()
    cfg.check()
    if cfg.patch_size % 16:
        raise AerialSegError(f"patch size must be a multiple of 16, not {cfg.patch_size}")
    parent, out = Path(parent), Path(out)
    model, parent_classes, meta = load_checkpoint(parent)  # a classifier is refused here
    if classes is None:
        classes = parent_classes
    else:  # the user's legend: one output per class of it (models.retarget), labels read by it
        model, parent_probs = retarget(model, parent_classes, classes), None
    if cfg.freeze is not None:  # before any work: a model without an encoder is refused here
        freeze(model, cfg.freeze)
    samples = load_labelled(images, labels, classes, vector=vector)
    if vector is None:
        pairs = pair_folders(Path(images), Path(labels), what="label image")
    else:
        from ..gis.vector_labels import vector_pairs

        pairs = vector_pairs(images, labels)
    files = {p.id: p.image for p in pairs}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    say(0.0, "which recipe")
    recipe, why = pick_recipe(cfg.recipe, model, meta, samples)
    log(why)
    if cfg.freeze is None and not hasattr(model, "encoder_parameters"):
        cfg = dataclasses.replace(cfg, freeze="none")  # no pretrained encoder to keep
    cfg = cfg.with_recipe(recipe)
    freeze(model, cfg.freeze)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, unit="step", desc="reading", disable=None if progress else True)
    say(0.0, "reading")
    replay = load_replay(data_replay, classes, cfg, rng, parent_classes) if data_replay else None
    bar.set_description("parent's predictions")
    say(0.0, "parent's predictions")
    teacher = (
        teacher_labels(model, samples, classes, cfg, device, parent_probs)
        if cfg.distill > 0
        else [np.full_like(s.labels, IGNORE_INDEX) for s in samples]
    )
    bar.set_description("fine-tuning")
    crops = StrokeCrops(samples, teacher, cfg.patch_size)
    weights = balanced_weights(samples, len(classes)) if cfg.balance else None
    student = prepare(copy.deepcopy(model), precision, device)
    if cfg.adapt_bn > 0:
        adapt_batchnorm(student, samples, cfg.adapt_bn, cfg.patch_size, rng, device)
    learning = [p for p in student.parameters() if p.requires_grad]  # the copy keeps the flags
    opt = torch.optim.AdamW(learning, lr=cfg.lr, weight_decay=0.0)
    replay_batches = replay.epoch(rng) if replay else None
    # the run is counted in steps, never in seconds, so that the same strokes give the same
    # model on an idle or a busy CPU; the clock is only a guard, and says so when it bites
    steps, losses, weight, cut = 0, [], cfg.distill, None
    self_train_at = round(cfg.self_train_at * cfg.steps) if cfg.self_train > 0 else None
    while steps < cfg.steps:
        if time.perf_counter() - start > cfg.minutes * 60:
            cut = f"stopped by the {cfg.minutes:g}-minute guard after {steps} of {cfg.steps} steps"
            break
        if steps == self_train_at:
            bar.set_description("self-training labels")
            say(steps / cfg.steps, "self-training labels")
            teacher = teacher_labels(student, samples, classes, cfg, device)
            crops.set_teacher(teacher)
            weight = cfg.self_train
            bar.set_description("fine-tuning")
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, steps / cfg.steps)
        x, y, t = crops.batch(cfg.batch_size, rng)
        parts = [(x, y)]
        if replay_batches is not None:
            try:
                parts.append(next(replay_batches))
            except StopIteration:
                replay_batches = replay.epoch(rng)
                parts.append(next(replay_batches))
        loss = _step(student, opt, parts, t, weight, weights, cfg, precision, device)
        losses.append(loss)
        steps += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", refresh=True)
        say(steps / cfg.steps, f"step {steps}, loss {np.mean(losses[-20:]):.3f}")
    bar.close()
    if cut:
        log(f"{out}: {cut}; the model depends on this machine's speed (raise --minutes)")
    seconds = time.perf_counter() - start
    if not steps:
        raise AerialSegError(
            f"reading the images took the whole {cfg.minutes:g}-minute guard ({seconds:.0f} s):"
            " nothing was learned and nothing written; give more --minutes"
        )
    record = {
        "parent": {
            "path": str(parent.resolve()),
            "name": meta.get("name") or parent.stem,
            "sha256": file_digest(parent),
            "finetune": meta.get("finetune"),  # the parent's own fine-tune, if any
        },
        # the image files by content too: `evaluate` leaves them out of its scores wherever
        # a copy lies (the app saves the user's images in a folder of their choosing)
        "images": [
            {
                "image": str(s.id),
                "labelled_pixels": int((s.labels != IGNORE_INDEX).sum()),
                "pixels": int(s.labels.size),
                "bytes": files[s.id].stat().st_size,
                "sha256": file_digest(files[s.id]),
            }
            for s in samples
        ],
        "labelled_pixels": int(sum((s.labels != IGNORE_INDEX).sum() for s in samples)),
        "data_replay": str(Path(data_replay).resolve()) if data_replay else None,
        "config": cfg.to_dict(),
        "recipe": why,
        "steps": steps,
        "cut_short": cut,
        "seconds": round(seconds, 1),
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
    }
    # the parent's training record stays, so `evaluate --split auto` still knows which of
    # the original images it never trained on
    kept = {k: meta[k] for k in ("train_config", "val_images", "split") if k in meta}
    student = student.float().cpu()
    if FAMILIARITY in meta:  # the user's imagery is familiar now: no warning on it
        kept[FAMILIARITY] = merge_reference(meta[FAMILIARITY], student, [s.image for s in samples])
    # the checkpoint holds what the inputs decide, not the seconds: same inputs, same bytes
    timeless = {k: v for k, v in record.items() if k != "seconds"}
    save_checkpoint(out, student, classes, **kept, finetune=timeless)
    log(
        f"fine-tuned {record['parent']['name']} on {record['labelled_pixels']:,} labelled pixels "
        f"of {len(samples)} image(s): {steps} steps in {seconds:.0f} s -> {out}"
    )
    return record


def _step(student, opt, parts, teacher_t, teacher_weight, weights, cfg, precision, device):
    """One AdamW step: strokes (class-balanced CE) + ``teacher_weight`` x CE to the teacher's
    labels (the parent's confident pixels, or the student's own once self-training starts)
    on the user's crops, CE on the replay crops, in one forward pass."""
    x = torch.cat([p[0] for p in parts]).to(device)
    student.train()
    for m in student.modules():  # keep the parent's batch-norm statistics (see the docstring)
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    if channels_last(precision, device):
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(precision, device):
        logits = student(x)
    logits = logits.float()
    n = parts[0][0].shape[0]
    y, t = parts[0][1].to(device), teacher_t.to(device)
    w = weights.to(device) if weights is not None else None
    loss = _ce(logits[:n], y, w)
    if teacher_weight > 0:
        loss = loss + teacher_weight * _ce(logits[:n], t)
    if len(parts) > 1:
        loss = loss + cfg.replay * _ce(logits[n:], parts[1][1].to(device))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    student.eval()
    return float(loss.detach())


def _ce(logits, target, weight=None):
    """Cross-entropy over the labelled pixels; 0 (not NaN) when a batch has none."""
    if not bool((target != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)
