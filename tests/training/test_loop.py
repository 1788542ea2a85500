"""The shared training loop, in-process: exact resume, the time budget, the run-folder rules.

Each test runs both tasks (the U-Net and the classifier) on tiny data: a few 4-filter steps.
"""

import csv
import json
import re

import pytest
import torch
from safetensors.torch import load_file

from aerialseg.config import ClassifyConfig, TrainConfig
from aerialseg.errors import AerialSegError
from aerialseg.training.classification import ClassificationTask, train_classifier
from aerialseg.training.segmentation import SegmentationTask, train

from ..helpers import write_cifar

TIMINGS = ("seconds", "minutes")


def segmentation(tmp_path, tiny_dataset, **over):
    # 8 patches of 32 x 32 in batches of 4: two steps an epoch
    cfg = TrainConfig(
        data=str(tiny_dataset), patch_size=32, batch_size=4, patches_per_epoch=8,
        arch="unet", base_filters=4, examples=1, epochs=3,
    )  # fmt: skip
    for k, v in over.items():
        setattr(cfg, k, v)
    return train, SegmentationTask, cfg


def classification(tmp_path, tiny_dataset, **over):
    # 32 training images in batches of 16 (two steps an epoch), augmented: the rng matters
    data = write_cifar(tmp_path / "cifar")
    cfg = ClassifyConfig(
        data=str(data), base_filters=4, dense=16, batch_size=16, augment=True, epochs=3
    )
    for k, v in over.items():
        setattr(cfg, k, v)
    return train_classifier, ClassificationTask, cfg


def segmentation_ema(tmp_path, tiny_dataset):
    # with --ema the checkpoints hold the average, and train_state.pt carries it on
    return segmentation(tmp_path, tiny_dataset, ema=0.9)


TASKS = pytest.mark.parametrize("task", [segmentation, classification])


def run(fn, cfg, out, **kw) -> list[str]:
    # The loop seeds each epoch, but the initial weights come from torch's global stream:
    # seed it so that two runs in one process start from the same network.
    torch.manual_seed(0)
    lines: list[str] = []
    fn(cfg, out, log=lines.append, progress=False, **kw)
    return lines


def history(run_dir) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMINGS} for r in csv.DictReader(f)]


def epoch_lines(lines) -> list[str]:
    return [re.sub(r" - \d+s - ", " - Ns - ", s) for s in lines if s.startswith("Epoch ")]


def count_steps(monkeypatch, task_cls, stop_at: int | None = None) -> list:
    """Count training steps; with ``stop_at``, raise KeyboardInterrupt (as Ctrl-C would) when
    that many have run."""
    steps, real = [], task_cls.training_step

    def step(self, batch, metrics):
        if len(steps) == stop_at:
            raise KeyboardInterrupt
        steps.append(1)
        return real(self, batch, metrics)

    monkeypatch.setattr(task_cls, "training_step", step)
    return steps


@pytest.mark.parametrize("task", [segmentation, segmentation_ema, classification])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(
    task, tmp_path, tiny_dataset, monkeypatch
):
    fn, task_cls, cfg = task(tmp_path, tiny_dataset)
    straight = tmp_path / "straight"
    lines = run(fn, cfg, straight)

    # Killed one step into epoch 2: epoch 1 is on disk, the half epoch is lost.
    broken = tmp_path / "broken"
    count_steps(monkeypatch, task_cls, stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run(fn, cfg, broken)
    monkeypatch.undo()
    assert json.loads((broken / "status.json").read_text())["status"] == "interrupted"
    assert len(history(broken)) == 1
    resumed = run(fn, cfg, broken, resume=True)

    assert resumed[-3].startswith("resuming at epoch 2 ")
    # the same numbers in every column but the timings, the same printed lines
    assert history(broken) == history(straight) and len(history(straight)) == 3
    assert epoch_lines(resumed) == epoch_lines(lines)[1:]
    # and bit for bit the same weights (batch-norm statistics included)
    for name in ("last.safetensors", "best.safetensors"):
        a, b = load_file(straight / name), load_file(broken / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    status = json.loads((broken / "status.json").read_text())
    assert status["status"] == "complete" and status["epochs"] == 3


@TASKS
def test_time_budget_stops_mid_epoch(task, tmp_path, tiny_dataset, monkeypatch):
    fn, task_cls, cfg = task(tmp_path, tiny_dataset, epochs=0, minutes=1e-6)
    steps = count_steps(monkeypatch, task_cls)
    lines = run(fn, cfg, tmp_path / "run")
    assert len(steps) == 1  # of two: the budget is checked after every step
    assert epoch_lines(lines)[0].startswith("Epoch 1/- - Ns - loss: ")
    assert len(history(tmp_path / "run")) == 1


@TASKS
def test_run_folder_is_checked_before_any_data_is_read(task, tmp_path, tiny_dataset):
    fn, _, cfg = task(tmp_path, tiny_dataset)
    cfg.data = str(tmp_path / "no such folder")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(AerialSegError, match="run folder exists and is not empty"):
        run(fn, cfg, tmp_path / "run")
    with pytest.raises(AerialSegError, match="nothing to resume"):
        run(fn, cfg, tmp_path / "run", resume=True)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]
