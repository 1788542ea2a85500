"""Training the U-Net: what segmentation adds to the shared loop in :mod:`.loop`.

Data are whole images held in memory (or, with ``stream``, read from disk as needed), sampled
as random crops (or the seed's fixed patches); validation runs on whole held-out images; the
best epoch is the one with the best mIoU.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..classes import DUBAI, ClassTable
from ..config import TrainConfig
from ..data.segmentation import (
    Batches,
    Sample,
    check_labelled,
    class_pixel_counts,
    load_dataset,
    mean_std,
    unknown_pixel_report,
)
from ..data.splits import split_images, split_patches_random
from ..errors import AerialSegError
from ..io.files import write_text
from ..losses import make_loss
from ..metrics import SegmentationMetrics
from ..models import SegmentationModel, create_model
from ..models.checkpoint import load_checkpoint, update_metadata
from ..models.registry import check_settings
from ..runtime import (
    autocast,
    channels_last,
    device_type,
    grad_scaler,
    predict_logits,
    prepare,
    resolve_precision,
    to_device,
)
from .ema import WeightEMA
from .loop import fit
from .task import Task

# history.csv's columns after the loop's epoch, seconds, minutes
HISTORY_FIELDS = (
    "lr",
    "train_loss",
    "train_accuracy",
    "train_jaccard",
    "val_loss",
    "val_accuracy",
    "val_jaccard",
    "val_miou",
    "val_miou_land_cover",
)
# (history column, line style, label) for the right-hand panel of curves.png
CURVES = (
    ("train_jaccard", "y", "Training Jaccard"),
    ("val_jaccard", "r", "Validation Jaccard"),
    ("val_miou", "b--", "Validation mIoU"),
    ("val_accuracy", "g:", "Validation accuracy"),
)


def arch_settings(cfg: TrainConfig) -> dict:
    """The architecture settings the config sets (None: the architecture's default)."""
    names = ("base_filters", "depth", "batch_norm", "dropout", "context", "encoder_bn")
    arch = {k: getattr(cfg, k) for k in names}
    return {k: v for k, v in arch.items() if v is not None}


def check_config(cfg: TrainConfig) -> None:
    cfg.check()  # every field's type, allowed values and bounds, as the config declares them
    check_settings(cfg.arch, arch_settings(cfg))  # before the data is read
    if cfg.patch_size % 16 or cfg.patch_size < 32:
        raise AerialSegError(f"patch size must be a multiple of 16 and >= 32, not {cfg.patch_size}")
    if not cfg.data:
        raise AerialSegError("no data folder given (--data DIR)")
    if cfg.label_smoothing and "ce" not in cfg.loss.split("+"):
        raise AerialSegError(
            f"label smoothing acts on the cross-entropy term: loss {cfg.loss!r} has none "
            "(use e.g. --loss dice+focal+ce)"
        )
    if cfg.stream and cfg.labels:
        raise AerialSegError("--stream reads masks/ as needed: vector --labels are read whole")
    if cfg.stream and (cfg.split != "image" or cfg.sampling != "random-crop"):
        raise AerialSegError(
            "--stream reads random crops: use --split image --sampling random-crop"
        )


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
    model = create_model(
        cfg.arch, num_classes=len(classes), normalization=norm, **arch_settings(cfg)
    )
    if cfg.pretrained and hasattr(model, "load_pretrained"):
        model.load_pretrained()  # ImageNet weights, and the input scale they were trained on
    return model


def parameter_groups(cfg: TrainConfig, model) -> list[dict]:
    """A pretrained encoder learns at ``encoder_lr`` times the rate of the rest: it starts
    from features worth keeping, the decoder from nothing."""
    if not (cfg.pretrained and hasattr(model, "encoder_parameters")):
        return [{"params": list(model.parameters())}]
    encoder = {id(p) for p in model.encoder_parameters()}
    return [
        {"params": [p for p in model.parameters() if id(p) in encoder], "lr_scale": cfg.encoder_lr},
        {"params": [p for p in model.parameters() if id(p) not in encoder]},
    ]


def make_optimizer(cfg: TrainConfig, model, device: str = "cpu") -> torch.optim.Adam:
    """Adam over :func:`parameter_groups`, fused (one kernel per parameter tensor) where torch
    has that kernel: unfused, each of unet-effl0's ~300 tensors costs a dozen small ops a
    step; fused, a step trained 1.08x the patches per CPU-second (2-core AMD EPYC)."""
    fused = device_type(device) in ("cpu", "cuda")
    return torch.optim.Adam(
        parameter_groups(cfg, model), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
    )


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


def train_step(model, opt, loss_fn, x, y, precision: str, scaler=None):
    """One optimisation step on ``x``'s device: autocast for bf16/fp16, channels_last where
    that wants it (see runtime), and ``scaler`` (a GradScaler) for fp16."""
    device = x.device.type
    if channels_last(precision, device):
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(precision, device):
        logits = model(x)
    loss = loss_fn(logits, y)
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return logits, loss


def validate(
    model: SegmentationModel,
    samples: Sequence[Sample],
    classes: ClassTable,
    loss_fn: Callable,
    precision: str,
    device: str = "cpu",
    reduce: Callable | None = None,
) -> dict:
    """Whole images (or the seed split's patches), one forward pass each; ``reduce`` sums
    the metrics of every rank's share (DDP) before they are computed."""
    metrics = SegmentationMetrics(len(classes), classes.land_cover)
    for s in samples:
        s = s.loaded()  # a streamed image: decoded now, one at a time
        logits = predict_logits(model, s.image, precision, device)
        target = to_device(torch.from_numpy(s.labels).long().unsqueeze(0), device)
        metrics.update(target, logits.softmax(1), float(loss_fn(logits, target)))
    if reduce is not None:
        reduce(metrics)
    return metrics.compute()


class SegmentationTask(Task):
    """The U-Net on image patches; validation on whole held-out images."""

    name = "segmentation"
    history_fields = HISTORY_FIELDS
    best_key = "val_miou"
    curves = (CURVES, "Training and validation IoU", "IoU / accuracy")

    def setup(self) -> None:
        cfg, log = self.cfg, self.log
        check_config(cfg)  # fail on a typo before minutes of data loading
        self.classes = ClassTable.from_file(cfg.classes) if cfg.classes else DUBAI
        self.device = self.ctx.device
        self.precision = resolve_precision(cfg.precision, self.device)
        if cfg.labels:  # shapes drawn in a GIS over the images of cfg.data
            from ..gis.vector_labels import VectorOptions, vector_samples

            opts = VectorOptions(cfg.class_field, cfg.layer or None, cfg.line_width)
            samples = vector_samples(cfg.data, cfg.labels, self.classes, opts, cfg.patch_size, log)
        elif cfg.stream:  # read as needed: only sizes now, pixel statistics in one pass
            from ..data.streaming import stream_dataset

            samples = stream_dataset(cfg.data, self.classes, cfg.patch_size)
        else:
            samples = load_dataset(cfg.data, self.classes, cfg.patch_size, self.progress)
        note = unknown_pixel_report(samples)
        if note:
            log(note)
        self.train_set, self.val_set = split_samples(cfg, samples)
        check_labelled(self.train_set, self.classes, f"{cfg.data} (training images)")
        check_labelled(self.val_set, self.classes, f"{cfg.data} (validation images)")
        patches = cfg.split == "random-patch" or cfg.sampling == "patches"
        self.train_batches = Batches(
            self.train_set,
            cfg.patch_size,
            cfg.batch_size,
            mode="patches" if patches else "random-crop",
            augment=cfg.augment,
            jitter=cfg.jitter,
            zoom=cfg.zoom,
            color=cfg.color,
            classmix=cfg.classmix,
            patches_per_epoch=cfg.patches_per_epoch,
            shards=self.ctx.world_size,  # each rank does its share of the epoch's patches
        )
        if cfg.split == "random-patch" and cfg.sampling != "patches":
            log("note: the random-patch split trains on its fixed patches (sampling=patches)")
        weights = class_weights(cfg, self.classes, self.train_set)
        if weights is not None:
            weights = weights.to(self.device)
        self.loss_fn = make_loss(cfg.loss, weights, cfg.label_smoothing)
        model = build_model(cfg, self.classes, self.train_set)
        self.model = prepare(model, self.precision, self.device)
        # With --ema, the run's product is the average: validation scores it, best/last hold
        # it (the live weights only carry training on, in train_state.pt).
        self.ema = WeightEMA(self.model, cfg.ema) if cfg.ema else None
        self.optimizer = make_optimizer(cfg, self.model, self.device)
        self.scaler = grad_scaler(self.precision, self.device)  # fp16 only

    def on_fit_start(self, out: Path) -> None:
        split = {
            "train": sorted({s.id for s in self.train_set}),
            "val": sorted({s.id for s in self.val_set}),
        }
        write_text(out / "split.json", json.dumps(split, indent=1) + "\n")

    def num_batches(self) -> int:
        return len(self.train_batches)

    def batches(self, rng: np.random.Generator):
        pin = self.device.startswith("cuda")
        return self.train_batches.epoch(rng, self.cfg.workers, pin_memory=pin)

    def learning_rate(self, progress: float) -> float:
        return lr_at(self.cfg, progress)

    def new_metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(len(self.classes), self.classes.land_cover)

    def training_step(self, batch, metrics: SegmentationMetrics) -> float:
        x, y = to_device(batch[0], self.device), to_device(batch[1], self.device)
        logits, loss = train_step(
            self.train_model, self.optimizer, self.loss_fn, x, y, self.precision, self.scaler
        )
        if self.ema is not None:
            self.ema.update(self.model)
        with torch.no_grad():
            metrics.update(y, logits.detach().float().softmax(1), loss.item())
        return loss.item()

    @property
    def kept_model(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.model

    def extra_state(self) -> dict:
        return {"ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    def validate(self) -> dict:
        ctx = self.ctx  # under DDP each rank scores every world_size-th image
        return validate(
            self.kept_model,
            self.val_set[ctx.rank :: ctx.world_size],
            self.classes,
            self.loss_fn,
            self.precision,
            self.device,
            ctx.reduce_metrics,
        )

    def history_row(self, train: dict, val: dict) -> dict:
        return {
            "lr": train["lr"],
            "train_loss": train["loss"],
            "train_accuracy": train["pixel_accuracy"],
            "train_jaccard": train["micro_jaccard"],
            "val_loss": val["loss"],
            "val_accuracy": val["pixel_accuracy"],
            "val_jaccard": val["micro_jaccard"],
            "val_miou": val["mean_iou"],
            "val_miou_land_cover": val["mean_iou_land_cover"],
        }

    def epoch_line(self, row: dict) -> str:
        # the seed's Keras line (jaccard_coef is its metric's name) plus our mIoU
        return (
            f"loss: {row['train_loss']:.4f} - accuracy: {row['train_accuracy']:.4f}"
            f" - jaccard_coef: {row['train_jaccard']:.4f} - val_loss: {row['val_loss']:.4f}"
            f" - val_accuracy: {row['val_accuracy']:.4f} - val_jaccard_coef: "
            f"{row['val_jaccard']:.4f} - val_mIoU: {row['val_miou']:.4f}"
        )

    def checkpoint_meta(self, epoch: int, metrics: dict) -> dict:
        return {
            "train_config": self.cfg.to_dict(),
            "epoch": epoch,
            "metrics": metrics,
            # ``evaluate --split val`` finds the held-out images again by these names
            "val_images": sorted({s.id.split("@")[0] for s in self.val_set}),
            "split": self.cfg.split,
        }

    def on_fit_end(self, out: Path) -> None:
        self._add_feature_reference(out)
        shown = [s.loaded() for s in self.val_set[: self.cfg.examples]]
        if not shown:
            return
        from .. import plots

        # the best checkpoint, as saved: the figure shows what best.safetensors does
        model, classes, _ = load_checkpoint(out / "best.safetensors")
        model = prepare(model, self.precision, self.device)
        preds = [
            predict_logits(model, s.image, self.precision, self.device)[0].argmax(0).cpu().numpy()
            for s in shown
        ]
        plots.examples(shown, preds, classes, out / "examples.png")

    def _add_feature_reference(self, out: Path) -> None:
        """Store in best and last the reference that ``segment``'s unfamiliar-imagery warning
        measures images against (:mod:`aerialseg.inference.familiarity`): the training
        images as the best model's encoder sees them, at most 16 windows each (seconds per
        image on a CPU). A run too small for one keeps the confidence warning alone."""
        from ..inference.familiarity import KEY, feature_reference

        model, _, _ = load_checkpoint(out / "best.safetensors")
        images = (s.loaded().image for s in self.train_set)
        try:
            ref = feature_reference(model, images)
        except AerialSegError as e:
            self.log(f"note: no feature reference for the unfamiliar-imagery warning ({e})")
            return
        for name in ("best.safetensors", "last.safetensors"):
            update_metadata(out / name, **{KEY: ref})


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """Train a model as ``aerialseg train`` does; returns the best and last epoch's metrics."""
    result = fit(SegmentationTask(cfg, log, progress), out_dir, resume)
    return {**result, "run_dir": str(Path(out_dir))}
