"""The training loop: a short, plain PyTorch loop (no framework) over in-memory batches."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import plots
from ..classes import DUBAI, ClassTable
from ..config import TrainConfig
from ..data.segmentation import (
    Batches,
    Sample,
    class_pixel_counts,
    load_dataset,
    mean_std,
    unknown_pixel_report,
)
from ..data.splits import split_images, split_patches_random
from ..errors import AerialSegError
from ..io.checkpoint import load_checkpoint, load_train_state, save_checkpoint, save_train_state
from ..io.files import write_text
from ..losses import LOSSES, make_loss
from ..metrics import SegmentationMetrics
from ..models import SegmentationModel, create_model, list_models
from ..runtime import PRECISIONS, autocast, predict_logits, prepare, resolve_precision

HISTORY_FIELDS = [
    "epoch",
    "seconds",
    "minutes",
    "lr",
    "train_loss",
    "train_accuracy",
    "train_jaccard",
    "val_loss",
    "val_accuracy",
    "val_jaccard",
    "val_miou",
    "val_miou_land_cover",
]


def check_config(cfg: TrainConfig) -> None:
    choices = {
        "model": list_models(),
        "loss": LOSSES,
        "split": ("image", "random-patch"),
        "sampling": ("random-crop", "patches"),
        "normalization": ("meanstd", "minmax"),
        "schedule": ("cosine", "constant"),
        "precision": PRECISIONS,
    }
    for key, valid in choices.items():
        if getattr(cfg, key) not in valid:
            raise AerialSegError(f"unknown {key} {getattr(cfg, key)!r}; valid: {', '.join(valid)}")
    if cfg.patch_size % 16 or cfg.patch_size < 32:
        raise AerialSegError(f"patch size must be a multiple of 16 and >= 32, not {cfg.patch_size}")
    if not cfg.data:
        raise AerialSegError("no data folder given (--data DIR)")


def split_samples(cfg: TrainConfig, samples: Sequence[Sample]):
    if cfg.split == "image":
        return split_images(samples, cfg.val_fraction, cfg.seed, cfg.val_tiles, cfg.val_images)
    if cfg.split == "random-patch":
        return split_patches_random(samples, cfg.patch_size, cfg.val_fraction, cfg.seed)
    raise AerialSegError(f"unknown split {cfg.split!r}: use image or random-patch")


def build_model(cfg: TrainConfig, classes: ClassTable, train: Sequence[Sample]):
    if cfg.normalization == "meanstd":
        mean, std = mean_std(train)
        norm = {"kind": "meanstd", "mean": mean, "std": std}
    elif cfg.normalization == "minmax":
        norm = {"kind": "minmax"}
    else:
        raise AerialSegError(f"unknown normalisation {cfg.normalization!r}: use meanstd or minmax")
    arch = {k: getattr(cfg, k) for k in ("base_filters", "depth", "batch_norm", "dropout")}
    arch = {k: v for k, v in arch.items() if v is not None}
    return create_model(cfg.model, num_classes=len(classes), normalization=norm, **arch)


def class_weights(cfg: TrainConfig, classes: ClassTable, train: Sequence[Sample]):
    if cfg.class_weights:
        if len(cfg.class_weights) != len(classes):
            raise AerialSegError(
                f"class_weights has {len(cfg.class_weights)} values for {len(classes)} classes"
            )
        return torch.tensor(cfg.class_weights, dtype=torch.float32)
    if cfg.balanced_weights:
        counts = class_pixel_counts(train, len(classes)).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(classes), 0.0)
        return torch.tensor(w / w[w > 0].mean(), dtype=torch.float32)
    return None


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Cosine decay over the run (by epochs, or by time with --minutes) after a short warm-up."""
    if cfg.schedule == "constant":
        return cfg.lr
    warm = 0.03
    if progress < warm:
        return cfg.lr * (0.1 + 0.9 * progress / warm)
    p = min(1.0, (progress - warm) / (1 - warm))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def train_step(model, opt, loss_fn, x, y, precision: str):
    """One optimisation step; bf16 autocast and channels_last where ``precision`` is bf16."""
    if precision == "bf16":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(precision):
        logits = model(x)
    loss = loss_fn(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits, loss


def validate(
    model: SegmentationModel,
    samples: Sequence[Sample],
    classes: ClassTable,
    loss_fn: Callable,
    precision: str,
) -> dict:
    """Whole images (or the seed split's patches), one forward pass each."""
    metrics = SegmentationMetrics(len(classes), classes.land_cover)
    for s in samples:
        logits = predict_logits(model, s.image, precision)
        target = torch.from_numpy(s.labels).long().unsqueeze(0)
        metrics.update(target, logits.softmax(1), float(loss_fn(logits, target)))
    return metrics.compute()


class Trainer:
    """Holds the state of one run; :meth:`fit` runs it. Use :func:`train` for the whole thing."""

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path,
        resume: bool = False,
        log: Callable[[str], None] = print,
        progress: bool = True,
    ):
        self.cfg, self.out, self.log, self.progress = cfg, Path(out_dir), log, progress
        state_file = self.out / "train_state.pt"
        if resume:
            if not state_file.is_file():
                raise AerialSegError(f"{self.out}: nothing to resume (no train_state.pt)")
        elif self.out.exists() and any(self.out.iterdir()):
            raise AerialSegError(
                f"{self.out}: run folder exists and is not empty "
                "(use --resume to continue it, or pick a new folder)"
            )
        check_config(cfg)  # fail on a typo before minutes of data loading
        self.classes = ClassTable.from_file(cfg.classes) if cfg.classes else DUBAI
        self.precision = resolve_precision(cfg.precision)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)

        samples = load_dataset(cfg.data, self.classes, cfg.patch_size, progress=progress)
        note = unknown_pixel_report(samples)
        if note:
            log(note)
        self.train_set, self.val_set = split_samples(cfg, samples)
        self.batches = Batches(
            self.train_set,
            cfg.patch_size,
            cfg.batch_size,
            mode="patches"
            if cfg.split == "random-patch" or cfg.sampling == "patches"
            else "random-crop",
            augment=cfg.augment,
            jitter=cfg.jitter,
            patches_per_epoch=cfg.patches_per_epoch,
        )
        if cfg.split == "random-patch" and cfg.sampling != "patches":
            log("note: the random-patch split trains on its fixed patches (sampling=patches)")

        self.weights = class_weights(cfg, self.classes, self.train_set)
        self.loss_fn = make_loss(cfg.loss, self.weights)
        self.model = prepare(build_model(cfg, self.classes, self.train_set), self.precision)
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.history: list[dict] = []
        self.start_epoch, self.elapsed, self.best = 0, 0.0, -1.0
        if resume:
            self._resume(state_file)

    def _resume(self, state_file: Path) -> None:
        model, _, meta = load_checkpoint(self.out / "last.safetensors")
        self.model.load_state_dict(model.state_dict())
        state = load_train_state(state_file)
        self.opt.load_state_dict(state["optimizer"])
        self.start_epoch, self.elapsed = int(state["epoch"]), float(state["elapsed"])
        self.best = float(state["best"])
        self.history = json.loads(state["history"])
        self.log(f"resuming at epoch {self.start_epoch + 1} ({self.elapsed / 60:.1f} min done)")

    def _meta(self, epoch: int, metrics: dict) -> dict:
        return {
            "train_config": self.cfg.to_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "val_images": sorted({s.id.split("@")[0] for s in self.val_set}),
            "split": self.cfg.split,
        }

    def _write_plan(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.out / "config.json", json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        split = {
            "train": sorted({s.id for s in self.train_set}),
            "val": sorted({s.id for s in self.val_set}),
        }
        write_text(self.out / "split.json", json.dumps(split, indent=1) + "\n")
        write_text(self.out / "status.json", json.dumps({"status": "running"}) + "\n")

    def _progress(self, epoch: int, step: int, since: float) -> float:
        cfg = self.cfg
        if cfg.minutes:  # a time budget replaces the epoch count
            return (self.elapsed + time.perf_counter() - since) / (cfg.minutes * 60)
        return (epoch + step / len(self.batches)) / cfg.epochs

    def _done(self, epoch: int) -> bool:
        if self.cfg.minutes:
            return self.elapsed >= self.cfg.minutes * 60
        return epoch >= self.cfg.epochs

    def train_epoch(self, epoch: int, t0: float) -> dict:
        cfg, model = self.cfg, self.model
        rng = np.random.default_rng([cfg.seed, epoch])  # per-epoch streams: resume is exact
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        metrics = SegmentationMetrics(len(self.classes), self.classes.land_cover)
        model.train()
        bar = tqdm(
            self.batches.epoch(rng),
            total=len(self.batches),
            leave=False,
            desc=f"epoch {epoch + 1}",
            unit="batch",
            disable=None if self.progress else True,
        )
        for step, (x, y) in enumerate(bar):
            lr = lr_at(cfg, self._progress(epoch, step, t0))
            for g in self.opt.param_groups:
                g["lr"] = lr
            logits, loss = train_step(model, self.opt, self.loss_fn, x, y, self.precision)
            with torch.no_grad():
                metrics.update(y, logits.detach().float().softmax(1), loss.item())
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if cfg.minutes and self.elapsed + time.perf_counter() - t0 >= cfg.minutes * 60:
                break
        bar.close()
        out = metrics.compute()
        out["lr"] = lr
        return out

    def fit(self) -> dict:
        self._write_plan()
        cfg, out = self.cfg, self.out
        epoch = self.start_epoch
        while not self._done(epoch):
            t0 = time.perf_counter()
            tr = self.train_epoch(epoch, t0)
            va = validate(self.model, self.val_set, self.classes, self.loss_fn, self.precision)
            self.elapsed += time.perf_counter() - t0
            epoch += 1
            row = {
                "epoch": epoch,
                "seconds": round(time.perf_counter() - t0, 2),
                "minutes": round(self.elapsed / 60, 3),
                "lr": tr["lr"],
                "train_loss": tr["loss"],
                "train_accuracy": tr["pixel_accuracy"],
                "train_jaccard": tr["micro_jaccard"],
                "val_loss": va["loss"],
                "val_accuracy": va["pixel_accuracy"],
                "val_jaccard": va["micro_jaccard"],
                "val_miou": va["mean_iou"],
                "val_miou_land_cover": va["mean_iou_land_cover"],
            }
            self.history.append(row)
            self.log(
                f"Epoch {epoch}/{cfg.epochs if not cfg.minutes else '-'} - {row['seconds']:.0f}s"
                f" - loss: {row['train_loss']:.4f} - accuracy: {row['train_accuracy']:.4f}"
                f" - jaccard_coef: {row['train_jaccard']:.4f} - val_loss: {row['val_loss']:.4f}"
                f" - val_accuracy: {row['val_accuracy']:.4f} - val_jaccard_coef: "
                f"{row['val_jaccard']:.4f} - val_mIoU: {row['val_miou']:.4f}"
            )
            meta = self._meta(epoch, {**va, "train_minutes": self.elapsed / 60})
            save_checkpoint(out / "last.safetensors", self.model, self.classes, **meta)
            if va["mean_iou"] > self.best:
                self.best = va["mean_iou"]
                save_checkpoint(out / "best.safetensors", self.model, self.classes, **meta)
            save_train_state(
                out / "train_state.pt",
                {
                    "optimizer": self.opt.state_dict(),
                    "epoch": epoch,
                    "elapsed": self.elapsed,
                    "best": self.best,
                    "history": json.dumps(self.history),
                },
            )
            self._write_history()
            plots.training_curves(self.history, out / "curves.png")
        if not self.history:
            raise AerialSegError("no epoch was run (epochs is 0 and no --minutes)")
        self._finish()
        best = max(self.history, key=lambda r: r["val_miou"])
        return {"best": best, "last": self.history[-1], "run_dir": str(out)}

    def _write_history(self) -> None:
        lines = [",".join(HISTORY_FIELDS)]
        for r in self.history:
            lines.append(
                ",".join(
                    f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]) for k in HISTORY_FIELDS
                )
            )
        write_text(self.out / "history.csv", "\n".join(lines) + "\n")

    def _finish(self) -> None:
        model, classes, _ = load_checkpoint(self.out / "best.safetensors")
        model = prepare(model, self.precision)
        shown = self.val_set[: self.cfg.examples]
        if shown:
            preds = [
                predict_logits(model, s.image, self.precision)[0].argmax(0).numpy() for s in shown
            ]
            plots.examples(shown, preds, classes, self.out / "examples.png")
        write_text(
            self.out / "status.json",
            json.dumps(
                {
                    "status": "complete",
                    "epochs": len(self.history),
                    "train_minutes": round(self.elapsed / 60, 2),
                }
            )
            + "\n",
        )


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """Train a model as ``aerialseg train`` does; returns the best and last epoch's metrics."""
    return Trainer(cfg, out_dir, resume=resume, log=log, progress=progress).fit()
