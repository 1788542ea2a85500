"""Training in several processes (DDP, gloo on the CPU), as torchrun starts them.

Two real processes each time, on tiny data: one DDP step of 2 ranks x b samples equals one
step of 1 process x 2b; a 2-process run resumes a 1-process run, records its world size, and
only rank 0 writes into the run folder (an audit hook in every process watches); a
2-process run interrupted and resumed equals an uninterrupted one (slow).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aerialseg.config import TrainConfig
from aerialseg.models.checkpoint import read_metadata
from aerialseg.training.loop import epoch_streams
from aerialseg.training.segmentation import train

from ..helpers import run_aerialseg
from . import ddp_step

HERE = Path(__file__).parent


def torchrun(*args, env=None, nproc: int = 2, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={nproc}", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def test_one_step_of_two_ranks_equals_one_process_with_twice_the_batch(tmp_path):
    b = 3
    out = tmp_path / "ddp.pt"
    r = torchrun(HERE / "ddp_step.py", out, b)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = torch.load(out)

    model, opt = ddp_step.network()
    loss, grads, weights = ddp_step.step(model, opt, *ddp_step.batch(2 * b))
    # the same loss and the same (averaged) gradients, up to float summation order
    assert float(ddp["loss"]) == pytest.approx(float(loss), rel=1e-5)
    for g_ddp, g in zip(ddp["grads"], grads, strict=True):
        torch.testing.assert_close(g_ddp, g, rtol=1e-4, atol=1e-6 * float(g.abs().max()))
    # hence the same weights after Adam's step (its first step is ~lr * sign(gradient))
    for w_ddp, w in zip(ddp["weights"], weights, strict=True):
        torch.testing.assert_close(w_ddp, w, rtol=0, atol=1e-6)


def test_epoch_streams_one_process_as_before_ranks_each_their_own():
    rng, seed = epoch_streams(7, 3)
    assert seed == 7 * 100_003 + 3
    assert rng.integers(1 << 30) == np.random.default_rng([7, 3]).integers(1 << 30)
    draws = [epoch_streams(7, 3, rank, 2)[0].integers(1 << 30, size=4) for rank in (0, 1)]
    assert not np.array_equal(*draws)  # different crops on each rank
    again = epoch_streams(7, 3, 1, 2)[0].integers(1 << 30, size=4)
    assert np.array_equal(draws[1], again)  # and the same ones when the epoch is redone


def tiny(data, **over) -> TrainConfig:
    cfg = TrainConfig(
        data=str(data), arch="unet", patch_size=32, batch_size=4, patches_per_epoch=16,
        base_filters=4,
        examples=1, epochs=1, device="cpu",
    )  # fmt: skip
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def guarded_env(tmp_path, run: Path) -> dict:
    """Every Python process started with this environment records its writes under ``run``
    (tests/training/write_guard.py as sitecustomize)."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(HERE / "write_guard.py", site / "sitecustomize.py")
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "GUARD_RUN": str(run),
        "GUARD_LOG": str(tmp_path / "writes"),
        "OMP_NUM_THREADS": "1",
    }


def history(run: Path) -> list[dict]:
    import csv

    with open(run / "history.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("seconds", "minutes")}
                for r in csv.DictReader(f)]  # fmt: skip


@pytest.mark.slow  # two training processes, ~8 s: keeps `make test` under 5 min
def test_two_processes_resume_a_one_process_run_and_only_rank_0_writes(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    torch.manual_seed(0)
    train(tiny(tiny_dataset), run, log=lambda s: None, progress=False)
    first = history(run)
    assert read_metadata(run / "last.safetensors")["world_size"] == 1

    # `aerialseg train --nproc 2` starts torchrun, which starts two `aerialseg train`
    r = run_aerialseg(
        "train", "--resume", run, "--epochs", 2, "--nproc", 2, "--device", "cpu", "-q",
        env=guarded_env(tmp_path, run),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    # one voice: each line once, from rank 0
    assert r.stdout.count("resuming at epoch 2") == 1, r.stdout
    assert r.stdout.count("Epoch 2/2 - ") == 1 and r.stdout.count("best epoch") == 1

    rows = history(run)
    assert len(rows) == 2 and rows[0] == first[0]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert read_metadata(run / "last.safetensors")["world_size"] == 2
    assert torch.load(run / "train_state.pt")["world_size"] == 2
    assert json.loads((run / "status.json").read_text())["status"] == "complete"

    writes = {p.stem: p.read_text().splitlines() for p in (tmp_path / "writes").iterdir()}
    assert writes["1"] == [], writes["1"]  # rank 1 never touched the run folder
    assert any("last.safetensors" in w for w in writes["0"])  # rank 0 wrote it
    launchers = [w for name, lines in writes.items() if name.startswith("launcher") for w in lines]
    assert launchers == []


@pytest.mark.slow
def test_two_process_run_interrupted_and_resumed_equals_an_uninterrupted_one(
    tiny_dataset, tmp_path
):
    common = ["--data", tiny_dataset, "--patch-size", 32, "--batch-size", 4,
              "--patches-per-epoch", 16, "--arch", "unet", "--base-filters", 4, "--examples", 1,
              "--device", "cpu",
              "--schedule", "constant", "-q", "--nproc", 2]  # fmt: skip
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    r = run_aerialseg("train", "--out", straight, "--epochs", 2, *common)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_aerialseg("train", "--out", broken, "--epochs", 1, *common)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_aerialseg("train", "--resume", broken, "--epochs", 2, *common)
    assert r.returncode == 0, r.stderr[-3000:]
    # same crops on each rank in epoch 2 (and a constant lr), so the same numbers and weights
    assert history(broken) == history(straight)
    a, b = load_file(straight / "last.safetensors"), load_file(broken / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
