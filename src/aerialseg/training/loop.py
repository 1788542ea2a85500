"""The one training loop and its run folder, shared by every task.

As torchgeo's BaseTask, without Lightning: a :class:`Task` fills in what differs between
tasks (data, model, optimiser, one training step, validation, what is logged and kept), and
:func:`fit` does everything else the same way for all of them:

- the run folder: ``config.json`` and the task's plan files at the start, ``status.json``
  (``running``, then ``complete``), ``history.csv`` and ``curves.png`` after every epoch;
- per-epoch random streams, so that a resumed run repeats an uninterrupted one exactly;
- a number of epochs, or a time budget (``minutes``) that the lr schedule follows instead;
- ``last.safetensors``, ``best.safetensors`` and ``train_state.pt`` (for resuming), each
  written atomically, so a run killed at any moment leaves whole files behind;
- the device (``cfg.device``) and, under torchrun, DDP (:mod:`.distributed`): each rank
  its own random streams and share of the epoch, metrics summed over ranks, and only rank 0
  writing files or printing.

Run folder files, history columns and the printed epoch lines are what the README documents;
change them only together with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import AerialSegError
from ..io.files import check_writable_folder, remove_stale_temps, write_text
from ..models.checkpoint import load_checkpoint, load_train_state, save_checkpoint, save_train_state
from . import distributed
from .distributed import Context
from .task import Task

STATE_FILE = "train_state.pt"
# The loop's own history columns; a task's ``history_fields`` follow them.
LOOP_FIELDS = ("epoch", "seconds", "minutes")


# What a run writes before its first epoch ends: a folder holding only these (and their
# temporary files) is a run that never got anywhere, which may be started again in place.
START_FILES = ("config.json", "split.json", "status.json")


def check_run_folder(out: Path, resume: bool, cfg=None, log: Callable[[str], None] = print) -> bool:
    """Never mix two runs in one folder: a new run needs an empty one (or one whose run
    stopped before finishing an epoch), a resumed one its state. Returns whether there is a
    state to restore: ``--resume`` on a run stopped before its first epoch ended starts it
    from the beginning. A complete run, with ``cfg`` asking for no more, is refused with
    the way to extend it."""
    if out.exists() and not out.is_dir():
        raise AerialSegError(f"{out}: exists and is not a folder")
    if resume:
        remove_stale_temps(out)  # what a kill left mid-write
        if (out / STATE_FILE).is_file():
            if cfg is not None:
                _check_unfinished(out, cfg)
            return True
        if (out / "config.json").is_file():  # killed (or failed) before its first epoch ended
            log(f"{out}: no epoch was finished before the run stopped: starting it again")
            return False
        raise AerialSegError(f"{out}: nothing to resume (no {STATE_FILE})")
    if out.exists() and any(out.iterdir()):
        if _never_started(out):
            remove_stale_temps(out)
            log(f"{out}: its earlier run stopped before finishing an epoch: starting it again")
            return False
        raise AerialSegError(
            f"{out}: run folder exists and is not empty "
            "(use --resume to continue it, or pick a new folder)"
        )
    check_writable_folder(out, "--out")
    return False


def _never_started(out: Path) -> bool:
    """Only what a run writes before its first epoch ends, and not from a complete run."""
    names = [p.name for p in out.iterdir()]
    ours = all(
        n in START_FILES or n.lstrip(".").split(".")[0] in ("config", "split", "status")
        for n in names
    )
    if not ours or "config.json" not in names:
        return False
    try:
        return json.loads((out / "status.json").read_text()).get("status") != "complete"
    except (OSError, ValueError, AttributeError):
        return True  # never written, or cut short by a kill: the run did not finish


def _check_unfinished(out: Path, cfg) -> None:
    """A resume with nothing left to do (a complete run, and no larger --epochs or
    --minutes) is an error that says how to extend the run."""
    try:
        status = json.loads((out / "status.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return
    if status != "complete":
        return  # e.g. killed after its last epoch: resuming finishes it (figures, status)
    state = load_train_state(out / STATE_FILE)
    epoch, elapsed = int(state["epoch"]), float(state["elapsed"])
    if cfg.minutes:
        if elapsed < cfg.minutes * 60:
            return
        raise AerialSegError(
            f"{out}: the run is complete ({epoch} epochs in {elapsed / 60:.1f} min) - nothing "
            f"to resume; to train it further, resume with a larger --minutes (e.g. --resume "
            f"{out} --minutes {max(1, round(2 * cfg.minutes))}) or --epochs"
        )
    if epoch < cfg.epochs:
        return
    raise AerialSegError(
        f"{out}: the run is complete ({epoch} of {cfg.epochs} epochs) - nothing to resume; "
        f"to train it further, resume with a larger --epochs (e.g. --resume {out} --epochs "
        f"{2 * max(epoch, 1)})"
    )


def _mark_stopped(task: Task, out: Path, error: BaseException) -> None:
    """A run that this call started and that did not finish says so in status.json (a kill
    -9 cannot be caught: its folder keeps 'running', which resuming handles the same way)."""
    if getattr(task, "run_folder", None) != out:
        return
    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    note = {"status": status, "error": str(error) or type(error).__name__}
    try:
        write_text(out / "status.json", json.dumps(note) + "\n")
    except Exception:  # noqa: BLE001 - e.g. the disk that failed the run is still full
        pass


def fit(task: Task, out_dir: str | Path, resume: bool = False) -> dict:
    """Run ``task`` into the folder ``out_dir`` (continuing it with ``resume``); returns the
    best and the last epoch's history rows. Under torchrun, every process runs this and
    rank 0 alone writes and prints."""
    out = Path(out_dir)
    getattr(task.cfg, "check", lambda: None)()  # types first: the checks below compare
    if not task.cfg.minutes and task.cfg.epochs < 1:
        raise AerialSegError("no epoch to run: give --epochs N (N >= 1) or --minutes")
    # by every rank, before any rank may write (setup waits for all of them)
    resume = check_run_folder(out, resume, task.cfg, task.log)
    ctx = distributed.setup(getattr(task.cfg, "device", "auto"))
    try:
        return _fit(task, out, resume, ctx)
    except BaseException as e:
        _mark_stopped(task, out, e)
        raise
    finally:
        task._ddp = None  # DDP's reducer must go before its process group
        distributed.teardown(ctx)


def _fit(task: Task, out: Path, resume: bool, ctx: Context) -> dict:
    cfg, main = task.cfg, ctx.main
    task.ctx = ctx
    if not main:  # one voice: rank 0 prints, the others work quietly
        task.log, task.progress = (lambda line: None), False
    log = task.log
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # the initial weights follow --seed too (resume loads its own)
    task.setup()
    history: list[dict] = []
    epoch, elapsed, best = 0, 0.0, -1.0
    if resume:
        epoch, elapsed, best, history = _restore(task, out)
        log(f"resuming at epoch {epoch + 1} ({elapsed / 60:.1f} min done)")
    task._ddp = distributed.wrap(task.model, ctx) if ctx.distributed else None
    if ctx.distributed:
        log(f"DDP: {ctx.world_size} processes ({ctx.backend}), rank 0 on {ctx.device}")
    ranks = {"world_size": ctx.world_size}  # recorded in config.json and every checkpoint

    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.json", json.dumps({**cfg.to_dict(), **ranks}, indent=2) + "\n")
        task.on_fit_start(out)
        write_text(out / "status.json", json.dumps({"status": "running"}) + "\n")
        task.run_folder = out  # from here on, a failure is recorded in status.json

    # A time budget replaces the epoch count: the run stops, and the schedule ends, with it.
    budget = cfg.minutes * 60 if cfg.minutes else None
    while (elapsed < budget) if budget else (epoch < cfg.epochs):
        t0 = time.perf_counter()
        train = _train_epoch(task, epoch, elapsed, t0, budget)
        val = task.validate()
        seconds = ctx.from_main(time.perf_counter() - t0)  # one clock for every rank
        elapsed += seconds  # validation counts against the budget too
        epoch += 1
        row = {
            "epoch": epoch,
            "seconds": round(seconds, 2),
            "minutes": round(elapsed / 60, 3),
            **task.history_row(train, val),
        }
        history.append(row)
        log(
            f"Epoch {epoch}/{'-' if budget else cfg.epochs} - {row['seconds']:.0f}s - "
            + task.epoch_line(row)
        )

        improved = row[task.best_key] > best
        if improved:
            best = row[task.best_key]
        if not main:
            continue
        meta = {**task.checkpoint_meta(epoch, {**val, "train_minutes": elapsed / 60}), **ranks}
        kept = task.kept_model  # the weights just validated (an EMA where there is one)
        save_checkpoint(out / "last.safetensors", kept, task.classes, **meta)
        if improved:
            save_checkpoint(out / "best.safetensors", kept, task.classes, **meta)
            task.on_best(val, out)
        # Weights travel in the state too: a kill between writing last.safetensors and this
        # file must not resume the new weights with the old optimiser and epoch. Tensors are
        # moved to the CPU, so a state written on a GPU resumes anywhere.
        state = {
            "model": _cpu(task.model.state_dict()),
            "optimizer": _cpu(task.optimizer.state_dict()),
            "epoch": epoch,
            "elapsed": elapsed,
            "best": best,
            "history": json.dumps(history),
            **ranks,
            **_cpu(task.extra_state()),
        }
        scaler = getattr(task, "scaler", None)
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        save_train_state(out / STATE_FILE, state)
        _write_history(history, (*LOOP_FIELDS, *task.history_fields), out / "history.csv")
        _write_curves(history, task.curves, out / "curves.png")

    if main:
        task.on_fit_end(out)
        done = {
            "status": "complete",
            "epochs": len(history),
            "train_minutes": round(elapsed / 60, 2),
        }
        write_text(out / "status.json", json.dumps(done) + "\n")
    ctx.barrier()  # the others wait until rank 0 has finished the run folder
    return {"best": max(history, key=lambda r: r[task.best_key]), "last": history[-1]}


def _cpu(obj):
    """A state dict (nested dicts and lists of tensors) with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def epoch_streams(seed: int, epoch: int, rank: int = 0, world_size: int = 1):
    """(numpy Generator, torch seed) for one epoch of one rank. A single process keeps the
    streams it always had; under DDP each rank gets its own, seeded by (seed, epoch, rank),
    so ranks draw different crops and a resumed run repeats an uninterrupted one exactly."""
    if world_size == 1:
        return np.random.default_rng([seed, epoch]), seed * 100_003 + epoch
    seq = np.random.SeedSequence([seed, epoch, rank])
    return np.random.default_rng(seq), int(seq.generate_state(1, np.uint64)[0] >> 1)


def _train_epoch(task: Task, epoch: int, elapsed: float, t0: float, budget: float | None):
    cfg, ctx = task.cfg, task.ctx
    # Streams of their own per epoch (numpy: sampling and augmentation; torch: dropout), so
    # epoch N draws the same numbers whether the run went straight through or was resumed.
    rng, torch_seed = epoch_streams(cfg.seed, epoch, ctx.rank, ctx.world_size)
    torch.manual_seed(torch_seed)
    n = task.num_batches()
    metrics = task.new_metrics()
    task.model.train()
    bar = tqdm(
        task.batches(rng),
        total=n,
        leave=False,
        desc=f"epoch {epoch + 1}",
        unit="batch",
        disable=None if task.progress else True,  # None: only on a terminal
    )
    for step, batch in enumerate(bar):
        if budget:  # rank 0's clock: every rank takes the same lr and stops at the same step
            done = (elapsed + ctx.from_main(time.perf_counter() - t0)) / budget
        else:
            done = (epoch + step / n) / cfg.epochs
        lr = task.learning_rate(done)
        for group in task.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss = task.training_step(batch, metrics)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if budget and elapsed + ctx.from_main(time.perf_counter() - t0) >= budget:
            break  # mid-epoch: the budget is a promise about time
    bar.close()
    ctx.reduce_metrics(metrics)
    return {**metrics.compute(), "lr": lr}


def _restore(task: Task, out: Path) -> tuple[int, float, float, list[dict]]:
    state = load_train_state(out / STATE_FILE)
    if "model" in state:
        task.model.load_state_dict(state["model"])
    else:  # written before the weights went into the state
        model, _, _ = load_checkpoint(out / "last.safetensors", task=task.name)
        task.model.load_state_dict(model.state_dict())
    task.optimizer.load_state_dict(state["optimizer"])
    scaler = getattr(task, "scaler", None)
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    task.load_extra_state(state)
    history = json.loads(state["history"])
    return int(state["epoch"]), float(state["elapsed"]), float(state["best"]), history


def _write_history(history: list[dict], fields: tuple[str, ...], path: Path) -> None:
    lines = [",".join(fields)]
    for r in history:
        lines.append(
            ",".join(f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]) for k in fields)
        )
    write_text(path, "\n".join(lines) + "\n")


def _write_curves(history: list[dict], curves: tuple, path: Path) -> None:
    from .. import plots  # matplotlib only once a run has an epoch to draw

    plots.training_curves(history, path, *curves)
