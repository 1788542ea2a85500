"""Fine-tuning a segmentation model on a user's sparse labels (strokes, polygons), in minutes.

Why a loop of its own rather than :func:`.loop.fit`: ``fit`` trains epochs into a run folder
(config, status, history, curves, best/last, resumable state) and validates every epoch; a
fine-tune is one short run with no validation set and nothing to resume, ending in one
checkpoint file, and each step mixes up to three kinds of target. What it shares with
training is reused: the schedule (:func:`.segmentation.lr_at`), the crops' flips/rotations,
:class:`~aerialseg.data.segmentation.Batches` for replay, the ignore index.

Two recipes (:data:`aerialseg.config.RECIPES`), because the two things users ask of it pull
apart (measured in benchmarks/new_place.py):

- **a new place** (imagery unlike the training data: the parent is wrong there, and sure of
  it): the strokes are trusted at a high rate, the parent's confident pixels are NOT kept
  (they are its errors), the pretrained encoder is kept as it is (its features carry over,
  and half the backward pass is saved), and halfway the student labels its own confident
  pixels all over the user's images and learns from them too (self-training: the unpainted
  parts of the images teach);
- **a correction at home**: a tiny rate and the parent's confident unlabelled pixels kept
  (issue 12: anything bolder made the other images worse).

``auto`` picks by the images' feature distance from the parent's training imagery, the same
measure segment's warning uses. The run is counted in steps, never in seconds, so the same
inputs give the same checkpoint bytes on an idle or a busy CPU; the clock is only a guard.
Batch norm keeps the parent's statistics (layers in eval mode): batches cut from one or two
images would replace the statistics of the whole training set with theirs.
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

from ..classes import IGNORE_INDEX, ClassTable
from ..config import FinetuneConfig
from ..data.segmentation import Sample, pair_folders
from ..errors import AerialSegError
from ..inference.familiarity import KEY as FAMILIARITY
from ..inference.familiarity import images_familiarity, merge_reference
from ..io.files import file_digest
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.retarget import retarget
from ..runtime import autocast, channels_last, prepare, resolve_device, resolve_precision
from .segmentation import lr_at
from .strokes import StrokeCrops, balanced_weights, load_labelled, load_replay, pad, teacher_labels


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
            crops.append(pad(image[y : y + patch, x : x + patch], patch, 0))
        model(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().to(device))
    for m, (mean, var, momentum) in zip(norms, parent):
        m.running_mean.mul_(share).add_(mean, alpha=1 - share)
        m.running_var.mul_(share).add_(var, alpha=1 - share)
        m.momentum = momentum
    model.eval()


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

    bar = tqdm(
        total=cfg.steps,
        unit="step",
        desc="reading",
        disable=None if progress else True,
        leave=False,
    )
    say(0.0, "reading")
    replay = load_replay(data_replay, classes, cfg, rng, parent_classes) if data_replay else None
    bar.set_description("parent's predictions")
    say(0.0, "parent's predictions")
    kept = None
    if cfg.distill > 0:
        teacher, kept = teacher_labels(
            model, samples, classes, cfg, device, parent_probs, cfg.distill_trust
        )
        for sample, k in zip(samples, kept):
            if not k.all():
                names = ", ".join(n for n, keep in zip(classes.names, k) if not keep)
                log(f"{sample.id}: the strokes contradict the model's {names} there")
    else:
        teacher = [np.full_like(s.labels, IGNORE_INDEX) for s in samples]
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
            teacher, _ = teacher_labels(student, samples, classes, cfg, device)
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
        "distilled_classes": None
        if kept is None
        else {
            s.id: [n for n, keep in zip(classes.names, k) if keep] for s, k in zip(samples, kept)
        },
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
