"""Kill -9 and resume drill for ``aerialseg train``.

A real tiny training run (4-filter U-Net, 32-pixel patches, a synthetic dataset) is killed
with SIGKILL at chosen and at random moments, then continued with ``--resume`` each time,
until it completes. After every kill: every checkpoint on disk loads, history.csv has
epochs 1..k with no gap or duplicate, and at most one finished epoch was lost. At the end
the run is complete and its history is that of the same run never interrupted.

The quick variant (2 kills: one before the first checkpoint, one while a checkpoint is
written) runs by default; the full drill (5 kills) with ``pytest -m slow tests/drill -s``,
which prints its table.
"""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path

import pytest

from aerialseg.models.checkpoint import load_checkpoint, load_train_state

from ..helpers import make_scene, run_aerialseg, write_pair
from .harness import Child, temp_files, wait_until

CHECKPOINTS = ("last.safetensors", "best.safetensors", "train_state.pt")
TIMINGS = ("seconds", "minutes")


def make_data(root: Path) -> Path:
    for i in range(5):  # 4 training images and a larger one held out (--val-images img_4)
        size = 320 if i == 4 else 96
        photo, labels = make_scene(size, size, seed=200 + i)
        write_pair(root, f"img_{i}", photo, labels)
    return root


def train_args(data: Path, run: Path, epochs: int, patches: int = 16) -> list:
    return [
        "train", "--data", data, "--out", run, "--epochs", epochs, "--patch-size", 32,
        "--arch", "unet", "--base-filters", 4, "--batch-size", 4, "--patches-per-epoch", patches,
        "--examples", 1,
        "--val-images", "img_4", "--precision", "fp32", "--threads", 1, "-q",
    ]  # fmt: skip


def history(run: Path) -> list[dict]:
    if not (run / "history.csv").is_file():
        return []
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def state_epoch(run: Path) -> int:
    path = run / "train_state.pt"
    return int(load_train_state(path)["epoch"]) if path.is_file() else 0


def check_folder(run: Path) -> int:
    """What must hold after any kill: every checkpoint under its final name loads, and
    history.csv is epochs 1..k. Returns the epoch a resume continues from."""
    for name in ("last.safetensors", "best.safetensors"):
        if (run / name).is_file():
            load_checkpoint(run / name)  # raises on a half-written file
    restored = state_epoch(run)  # loads train_state.pt (raises if it is corrupt)
    epochs = [int(r["epoch"]) for r in history(run)]
    assert epochs == list(range(1, len(epochs) + 1)), epochs
    assert restored - 1 <= len(epochs) <= restored, (epochs, restored)  # history follows state
    return restored


def finished_epochs(text: str) -> int:
    """The last epoch the child announced as finished (its 'Epoch k/N' line)."""
    done = [
        int(line.split()[1].split("/")[0])
        for line in text.splitlines()
        if line.startswith("Epoch ")
    ]
    return max(done, default=0)


def aim(child: Child, run: Path, target: str, rng: random.Random) -> str:
    """Wait for the moment ``target`` describes and kill the child there; returns where the
    kill landed (the child's phase, from its stack or the files it was writing)."""
    if target == "checkpoint":  # a temporary checkpoint file exists: it is being written

        def writing():
            return temp_files(run, CHECKPOINTS)

        seen = wait_until(writing, child, step=0)  # a tight loop: the writes take a few ms
        child.kill()
        if not seen:
            return "(the run ended first)"
        left = temp_files(run, CHECKPOINTS)
        return f"checkpoint ({'mid-write: ' + left[0] + ' left' if left else 'write just done'})"
    if target == "random":  # any moment of the epochs (not of Python's start-up)
        wait_until(lambda: child.where() in ("training", "validation"), child, step=0.02)
        time.sleep(rng.uniform(0, 1.5))
        where = child.where()
        child.kill()
        return where or "(the run ended first)"
    # a phase: ask where the child is until it is there
    first_epoch = target == "training before the first checkpoint"
    phase = "training" if first_epoch else target

    def there():
        if first_epoch and (run / "train_state.pt").exists():
            return "missed"
        return child.where() == phase or None

    got = wait_until(there, child, step=0.02)
    child.kill()
    assert got is True, f"never saw {target} ({got}): {child.finish()}"
    return target


def drill(
    tmp: Path, targets: list[str], epochs: int, seed: int = 0, patches: int = 16
) -> list[dict]:
    data = make_data(tmp / "data")
    run = tmp / "run"
    rng = random.Random(seed)
    rows, resume = [], False
    args = train_args(data, run, epochs, patches)
    for i, target in enumerate(targets):
        cmd = ["train", "--resume", run, "-q"] if resume else args
        child = Child(cmd, tmp / f"dumps_{i}.txt")
        landed = aim(child, run, target, rng)
        code, out, err = child.finish()
        assert code == -9, f"kill {i + 1} ({target}) came after the run had ended: {landed}"
        assert "Traceback" not in err, err
        done = finished_epochs(out)
        if resume:
            started = (
                int(out.split("resuming at epoch ")[1].split()[0]) - 1
                if "resuming at" in out
                else 0
            )
            done = max(done, started)
        restored = check_folder(run)
        rows.append({"kill": i + 1, "aimed at": target, "landed": landed,
                     "epochs done": done, "epochs on disk": restored,
                     "epochs lost": max(0, done - restored), "exit": code})  # fmt: skip
        assert done - restored <= 1, rows[-1]
        resume = True
    code, out, err = Child(["train", "--resume", run, "-q"], tmp / "dumps_end.txt").finish()
    assert code == 0 and "Traceback" not in err, err
    check_folder(run)
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    assert [int(r["epoch"]) for r in history(run)] == list(range(1, epochs + 1))
    for name in CHECKPOINTS:
        assert (run / name).is_file(), name
    assert not temp_files(run), "temporary files of the killed runs are left"
    return rows


def same_as_uninterrupted(tmp: Path, epochs: int, patches: int = 16) -> None:
    r = run_aerialseg(*train_args(tmp / "data", tmp / "straight", epochs, patches))
    assert r.returncode == 0, r.stderr

    def numbers(run):
        return [{k: v for k, v in row.items() if k not in TIMINGS} for row in history(run)]

    assert numbers(tmp / "run") == numbers(tmp / "straight")


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = [" | ".join(keys)] + [" | ".join(str(r[k]) for k in keys) for r in rows]
    lost = sum(r["epochs lost"] for r in rows)
    return "\n".join(lines) + f"\nsurvived {len(rows)}/{len(rows)} kills, {lost} epochs lost"


@pytest.mark.slow  # kills training runs, ~11 s: keeps `make test` under 5 min
def test_quick_kill_drill(tmp_path):
    """Killed before its first checkpoint (resume starts it again) and while a checkpoint
    is being written (resume continues from the last whole one)."""
    rows = drill(tmp_path, ["training before the first checkpoint", "checkpoint"], epochs=3)
    assert rows[0]["epochs on disk"] == 0
    print("\n" + table(rows))


@pytest.mark.slow
def test_kill_drill(tmp_path):
    """Five kills: in epoch 1's training, in validation, while a checkpoint is written, and
    at two random moments; then the run equals one never interrupted."""
    targets = ["training before the first checkpoint", "validation", "checkpoint", "random",
               "random"]  # fmt: skip
    rows = drill(tmp_path, targets, epochs=10, seed=11, patches=48)
    same_as_uninterrupted(tmp_path, epochs=10, patches=48)
    print("\n" + table(rows))
