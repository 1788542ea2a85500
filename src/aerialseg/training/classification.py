"""Training an image classifier (the ISLR2 CNN)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..classes import ClassTable
from ..config import ClassifyConfig
from ..data.classification import describe_dataset, load_data
from ..data.imageset import ImageSet
from ..data.segmentation import dihedral
from ..errors import AerialSegError
from ..inference.classifier import evaluate_classifier, to_batch
from ..io.checkpoint import save_checkpoint
from ..io.files import write_text
from ..models import create_model, list_models


def training_curves(history: Sequence[dict], path: str | Path) -> Path:
    from ..plots import training_curves as curves

    accuracy = (
        ("train_accuracy", "y", "Training accuracy"),
        ("val_accuracy", "r", "Validation accuracy"),
    )
    return curves(history, path, accuracy, "Training and validation accuracy", "Accuracy")


def confusion_png(confusion, classes: ClassTable, path: str | Path) -> Path:
    """The segmentation confusion plot for a few classes; a plain heat map for many (CIFAR's
    100 would need 10 000 printed numbers)."""
    from ..plots import confusion_matrix, plt, save_figure

    if len(classes) <= 20:
        return confusion_matrix(np.asarray(confusion), classes, path)
    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(10, 9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xlabel="Predicted class", ylabel="True class", title="Confusion matrix (rows sum to 1)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


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
