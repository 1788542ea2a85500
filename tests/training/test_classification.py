"""Training the image classifier in-process: its run folder, history columns, epoch line and
checkpoint metadata (what ``aerialseg classify evaluate`` reads)."""

import re

import numpy as np

from aerialseg.classes import ClassTable
from aerialseg.config import ClassifyConfig
from aerialseg.models.checkpoint import read_metadata
from aerialseg.plots import confusion_matrix
from aerialseg.training.classification import train_classifier

from ..helpers import write_cifar


def test_run_folder_history_line_and_metadata(tmp_path):
    data = write_cifar(tmp_path / "cifar")
    cfg = ClassifyConfig(data=str(data), base_filters=4, dense=16, batch_size=16, epochs=2)
    lines = []
    result = train_classifier(cfg, tmp_path / "run", log=lines.append, progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "config.json", "status.json", "history.csv", "curves.png", "confusion.png",
        "best.safetensors", "last.safetensors", "train_state.pt",
    }  # fmt: skip
    header = (run / "history.csv").read_text().splitlines()[0]
    assert header == (
        "epoch,seconds,minutes,train_loss,train_accuracy,val_loss,val_accuracy,"
        "val_balanced_accuracy"
    )
    assert lines[0].startswith("cifar100: 32 training and 8 validation images of 32x32, 4 classes")
    number = r"\d+\.\d{4}"
    assert re.fullmatch(
        rf"Epoch 2/2 - \d+s - loss: {number} - accuracy: {number} - val_loss: {number}"
        rf" - val_accuracy: {number}",
        lines[-1],
    ), lines[-1]
    meta = read_metadata(run / "best.safetensors")
    assert meta["task"] == "classification" and meta["train_images"] == 32
    assert meta["dataset"]["kind"] == "cifar100" and "train_config" in meta
    assert {"accuracy", "balanced_accuracy", "loss", "train_minutes"} <= set(meta["metrics"])
    assert set(result) == {"best", "last"} and result["last"]["epoch"] == 2


def test_confusion_matrix_draws_many_classes_as_a_heat_map(tmp_path):
    classes = ClassTable(tuple(f"c{i}" for i in range(30)), tuple((i, i, i) for i in range(30)))
    cm = np.random.default_rng(0).integers(0, 5, (30, 30))
    assert confusion_matrix(cm, classes, tmp_path / "cm.png").stat().st_size > 0
