"""The hooks a kind of training run fills in (segmentation, classification); the one loop that
calls them is :func:`aerialseg.training.loop.fit`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from .distributed import Context


class Task:
    """What one kind of training run fills in; :func:`fit` calls these hooks.

    ``cfg`` needs ``seed``, ``epochs``, ``minutes``, ``threads``, ``device`` and
    ``to_dict()``. The constructor only stores its arguments: :meth:`setup` does the slow
    work (loading data) and runs only once :func:`fit` has checked the run folder, so a
    mistake costs no waiting. :func:`fit` sets ``ctx`` (device, rank, world size) before
    :meth:`setup`; ``setup`` puts the model on ``ctx.device``, and ``training_step`` calls
    ``train_model`` (the model, or its DDP wrapper), shares out its data by ``ctx``'s rank,
    and ``validate`` sums its metrics over ranks (``ctx.reduce_metrics``).
    """

    name = ""  # the checkpoint's task, for resuming from an older run folder
    history_fields: tuple[str, ...] = ()  # history.csv's columns after LOOP_FIELDS
    best_key = ""  # the history column whose highest value makes an epoch the best
    # plots.training_curves' right panel: ((column, line style, label), ...), title, y label
    curves: tuple = ((), "", "")

    # set by setup()
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    classes: object  # a ClassTable, stored in every checkpoint
    ctx: Context = Context()  # set by fit(): the device and this process's rank
    _ddp: torch.nn.Module | None = None

    def __init__(self, cfg, log: Callable[[str], None] = print, progress: bool = True):
        self.cfg, self.log, self.progress = cfg, log, progress

    @property
    def train_model(self) -> torch.nn.Module:
        """What training steps call: ``model``, or the DDP wrapper around it under torchrun."""
        return self._ddp if self._ddp is not None else self.model

    @property
    def kept_model(self) -> torch.nn.Module:
        """The weights that are validated and saved: ``model``, or an average of it (EMA)
        where the task keeps one."""
        return self.model

    def extra_state(self) -> dict:
        """What else ``train_state.pt`` must hold to resume exactly (e.g. the EMA weights)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` saved, from the whole resumed state."""

    def setup(self) -> None:
        """Check the config, load the data, build ``model``, ``optimizer`` and ``classes``."""
        raise NotImplementedError

    def on_fit_start(self, out: Path) -> None:
        """Write the task's plan files (e.g. the split) beside config.json."""

    def num_batches(self) -> int:
        raise NotImplementedError

    def batches(self, rng: np.random.Generator) -> Iterable:
        """One epoch's training batches; all their randomness must come from ``rng``."""
        raise NotImplementedError

    def learning_rate(self, progress: float) -> float:
        """The lr at ``progress`` (0 to 1) of the run, by epochs or by time."""
        raise NotImplementedError

    def new_metrics(self):
        """A fresh accumulator of training metrics, handed to every training_step; the loop
        sums its ``SUMMED`` attributes over ranks and calls its ``compute()`` at the end of the
        epoch."""
        raise NotImplementedError

    def training_step(self, batch, metrics) -> float:
        """One optimisation step on ``batch``; updates ``metrics`` and returns the loss."""
        raise NotImplementedError

    def validate(self) -> dict:
        raise NotImplementedError

    def history_row(self, train: dict, val: dict) -> dict:
        """The ``history_fields`` of an epoch from training (with ``lr``) and validation
        metrics."""
        raise NotImplementedError

    def epoch_line(self, row: dict) -> str:
        """What the printed epoch line shows after ``Epoch N/M - Ss - ``."""
        raise NotImplementedError

    def checkpoint_meta(self, epoch: int, metrics: dict) -> dict:
        """Metadata stored with the weights of this epoch (``metrics``: validation + time)."""
        raise NotImplementedError

    def on_best(self, val: dict, out: Path) -> None:
        """Called after a new best.safetensors was written."""

    def on_fit_end(self, out: Path) -> None:
        """End-of-run extras (example figures), before status.json says complete."""
