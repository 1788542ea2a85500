"""Training an image classifier (the ISLR2 CNN): what classification adds to :mod:`.loop`.

Data are equal-sized images in memory, shuffled every epoch; the optimiser is the ISLR lab's
RMSprop at a constant rate; the best epoch is the one with the best validation accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..config import ClassifyConfig
from ..data.classification import describe_dataset, load_data
from ..data.imageset import ImageSet
from ..data.segmentation import dihedral
from ..errors import AerialSegError
from ..inference.classifier import evaluate_classifier, to_batch
from ..models import check_name, create_model
from ..runtime import to_device
from .loop import fit
from .task import Task

# history.csv's columns after the loop's epoch, seconds, minutes
HISTORY_FIELDS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_balanced_accuracy",
)


def build_classifier(cfg: ClassifyConfig, train: ImageSet, size: int):
    check_name(cfg.arch, "classification")
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
        cfg.arch, num_classes=len(train.classes), input_size=size, normalization=norm, **arch
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


class _Running:
    """Mean loss and accuracy over the batches of an epoch, weighted by batch size."""

    SUMMED = ("loss_sum", "correct", "seen")  # what DDP sums over ranks

    def __init__(self):
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0

    def update(self, loss: float, correct: int, n: int) -> None:
        self.loss_sum += loss * n
        self.correct += correct
        self.seen += n

    def compute(self) -> dict:
        return {"loss": self.loss_sum / self.seen, "accuracy": self.correct / self.seen}


class ClassificationTask(Task):
    """The CNN on whole (small) images, shuffled every epoch."""

    name = "classification"
    history_fields = HISTORY_FIELDS
    best_key = "val_accuracy"
    curves = (
        (
            ("train_accuracy", "y", "Training accuracy"),
            ("val_accuracy", "r", "Validation accuracy"),
        ),
        "Training and validation accuracy",
        "Accuracy",
    )

    def setup(self) -> None:
        cfg = self.cfg
        cfg.check()  # types, allowed values and bounds, before minutes of data loading
        if cfg.epochs < 1 and not cfg.minutes:
            raise AerialSegError("give at least one epoch (or --minutes)")
        ds = describe_dataset(cfg)
        parts = load_data(ds, ("train", "val"), self.progress)
        train, val = parts["train"], parts["val"]
        if ds["kind"] == "imagefolder":
            ds["names"] = list(train.classes.names)
        if cfg.limit:
            keep = np.random.default_rng(cfg.seed).permutation(len(train))[: cfg.limit]
            train = train.subset(np.sort(keep))
        self.ds, self.train, self.val, self.classes = ds, train, val, train.classes
        self.device = self.ctx.device
        self.model = build_classifier(cfg, train, ds["size"]).to(self.device)
        counts = ", ".join(f"{n} {c}" for n, c in zip(train.classes.names, train.counts()))
        self.log(
            f"{ds['kind']}: {len(train)} training and {len(val)} validation images of "
            f"{ds['size']}x{ds['size']}, {len(train.classes)} classes"
            + (f" (training: {counts})" if len(train.classes) <= 10 else "")
        )
        # Keras' RMSprop defaults (rho 0.9, eps 1e-7), which the ISLR lab used
        self.optimizer = torch.optim.RMSprop(
            self.model.parameters(), lr=cfg.lr, alpha=0.9, eps=1e-7
        )

    def _per_rank(self) -> int:
        """Images each rank trains on per epoch: all of them in a single process, a
        world_size-th share (drawn from the rank's own stream) under DDP."""
        return -(-len(self.train) // self.ctx.world_size)

    def num_batches(self) -> int:
        return -(-self._per_rank() // self.cfg.batch_size)

    def batches(self, rng: np.random.Generator):
        size = self.cfg.batch_size
        order = rng.permutation(len(self.train))[: self._per_rank()]
        for b in range(self.num_batches()):
            idx = np.sort(order[b * size : (b + 1) * size])  # sorted: faster gathering
            images = self.train.images[idx]
            if self.cfg.augment:
                images = _augment(images, rng, self.ds["kind"] == "landcover")
            yield to_batch(images), torch.from_numpy(self.train.labels[idx])

    def learning_rate(self, progress: float) -> float:
        return self.cfg.lr  # constant, as in the lab

    def new_metrics(self) -> _Running:
        return _Running()

    def training_step(self, batch, metrics: _Running) -> float:
        x, y = to_device(batch[0], self.device), to_device(batch[1], self.device)
        logits = self.train_model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        metrics.update(loss.item(), int((logits.argmax(1) == y).sum()), len(y))
        return loss.item()

    def validate(self) -> dict:
        return evaluate_classifier(self.model, self.val, device=self.device)

    def history_row(self, train: dict, val: dict) -> dict:
        return {
            "train_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_balanced_accuracy": val["balanced_accuracy"],
        }

    def epoch_line(self, row: dict) -> str:
        return (
            f"loss: {row['train_loss']:.4f} - accuracy: {row['train_accuracy']:.4f} - "
            f"val_loss: {row['val_loss']:.4f} - val_accuracy: {row['val_accuracy']:.4f}"
        )

    def checkpoint_meta(self, epoch: int, metrics: dict) -> dict:
        return {
            "task": "classification",
            # how to rebuild the same data and split (``classify evaluate`` reads it)
            "dataset": self.ds,
            "train_config": self.cfg.to_dict(),
            "epoch": epoch,
            "train_images": len(self.train),
            "metrics": metrics,
        }

    def on_best(self, val: dict, out: Path) -> None:
        from .. import plots

        plots.confusion_matrix(val["confusion_matrix"], self.classes, out / "confusion.png")


def train_classifier(
    cfg: ClassifyConfig,
    out_dir: str | Path,
    log: Callable[[str], None] = print,
    progress: bool = True,
    resume: bool = False,
) -> dict:
    """Train as ``aerialseg classify train`` does; returns the best and last epoch's rows.
    ``resume`` continues the interrupted run in ``out_dir`` (``cfg`` as it was, or with more
    epochs or minutes)."""
    return fit(ClassificationTask(cfg, log, progress), out_dir, resume)
