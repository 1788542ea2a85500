"""``aerialseg train`` (and ``evaluate``, ``baseline``) against the corpus: config files and
flags that cannot be used, run folders that cannot be written or resumed, a full disk, and
training states that would run code. (Bad datasets: test_datasets.py.)"""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from .cases import (
    BAD_CONFIGS,
    BAD_FLAGS,
    MODEL_KINDS,
    PickleBomb,
    bad_models,
    good_dataset,
    write_config,
)
from .conftest import leftovers, refused

SETTINGS = {"arch": "unet", "epochs": 1, "patch_size": 32, "base_filters": 4, "batch_size": 4,
            "patches_per_epoch": 8, "examples": 0}  # fmt: skip


def tiny(but: str = "") -> list[str]:
    """Flags of a tiny run, leaving out those whose key occurs in ``but`` (a config file's
    text: flags would override it)."""
    flags = ["-q"]
    for k, v in SETTINGS.items():
        if k not in but:
            flags += ["--" + k.replace("_", "-"), str(v)]
    return flags


TINY = tiny()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return good_dataset(tmp_path_factory.mktemp("data") / "ds")


@pytest.mark.parametrize("kind", BAD_CONFIGS)
def test_bad_config_file(kind, cli, data, tmp_path):
    name, text, says = BAD_CONFIGS[kind]
    config = write_config(tmp_path, name, text)
    r = cli("train", "--data", data, "--out", tmp_path / "run", "--config", config, *tiny(text))
    refused(r, [] if kind == "zero-epochs" else name, says)
    assert not (tmp_path / "run").exists()


def test_missing_config_file(cli, data, tmp_path):
    r = cli("train", "--data", data, "--out", tmp_path / "run", "--config", tmp_path / "no.yaml")
    refused(r, "no.yaml", "cannot read config (No such file or directory)")


@pytest.mark.parametrize("kind", BAD_FLAGS)
def test_bad_flags(kind, cli, data, tmp_path):
    flags, says = BAD_FLAGS[kind]
    r = cli("train", "--data", data, "--out", tmp_path / "run", "-q", *flags)
    refused(r, [], says)
    assert not (tmp_path / "run").exists()


def test_out_is_a_file_or_unwritable(cli, data, tmp_path, read_only_folder):
    (tmp_path / "run").write_text("mine")
    r = cli("train", "--data", data, "--out", tmp_path / "run", *TINY)
    refused(r, "run", "exists and is not a folder")
    r = cli("train", "--data", data, "--out", read_only_folder / "run", *TINY)
    refused(r, str(read_only_folder), "Read-only file system")
    assert leftovers(read_only_folder) == []


def test_full_disk_fails_in_one_line_then_the_same_out_starts_again(cli, data, small_disk):
    """The first checkpoint does not fit: one line naming it, no checkpoint or temporary
    file left, status.json says failed and why; once there is room, the same --out runs."""
    run = small_disk / "run"
    r = cli("train", "--data", data, "--out", run, *TINY)
    refused(r, "last.safetensors", "No space left on device")
    assert leftovers(run) == ["config.json", "split.json", "status.json"]
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and "No space left" in status["error"]

    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    r = cli("train", "--data", data, "--out", run, *TINY)
    assert r.code == 0, r.err
    assert "starting it again" in r.out
    assert json.loads((run / "status.json").read_text())["status"] == "complete"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    """A complete one-epoch run, to break in various ways (each test copies it)."""
    from .conftest import run_cli

    run = tmp_path_factory.mktemp("finished") / "run"
    r = run_cli("train", "--data", data, "--out", run, *TINY)
    assert r.code == 0, r.err
    return run


def _copy(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / "run")


def test_resume_of_a_complete_run_says_how_to_extend_it(cli, finished, tmp_path):
    run = _copy(finished, tmp_path)
    r = cli("train", "--resume", run, "-q")
    refused(r, str(run), "the run is complete (1 of 1 epochs)")
    assert "--epochs 2" in r.err
    r = cli("train", "--resume", run, "--epochs", "2", "-q")
    assert r.code == 0 and "resuming at epoch 2" in r.out, r.err
    assert len((run / "history.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize("how", ["pickle-that-runs-code", "truncated", "text"])
def test_resume_refuses_a_bad_training_state(how, cli, finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run / "status.json").write_text('{"status": "running"}')  # as after a kill
    state = run / "train_state.pt"
    if how == "pickle-that-runs-code":
        torch.save({"epoch": PickleBomb(tmp_path / "PWNED")}, state)
    elif how == "truncated":
        state.write_bytes(state.read_bytes()[:500])
    else:
        state.write_text("not a state")
    r = cli("train", "--resume", run, "-q")
    refused(r, "train_state.pt", "cannot load training state")
    assert not (tmp_path / "PWNED").exists()


def test_resume_of_a_folder_that_is_no_run(cli, tmp_path):
    (tmp_path / "run").mkdir()
    r = cli("train", "--resume", tmp_path / "run")
    refused(r, "run", "not a run folder (no config.json)")
    (tmp_path / "file").write_text("x")
    r = cli("train", "--resume", tmp_path / "file")
    refused(r, "file", "not a run folder")


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_evaluate_bad_model(kind, cli, data, segmenter, classifier, tmp_path):
    make, says = bad_models(segmenter, classifier, "a classification model, not a segmentation")[
        kind
    ]
    (tmp_path / "m").mkdir()
    model = make(tmp_path / "m")
    r = cli("evaluate", "--data", data, "--model", model, "-q")
    refused(r, str(model), says)
    assert not (tmp_path / "m" / "PWNED").exists()


def test_evaluate_and_baseline_outputs_into_a_file(cli, data, segmenter, tmp_path):
    (tmp_path / "taken").write_text("mine")
    r = cli(
        "evaluate", "--data", data, "--model", segmenter, "--confusion", tmp_path / "taken/c.png"
    )
    refused(r, "taken", "exists and is not a folder")
    pytest.importorskip("sklearn")
    r = cli("baseline", "--method", "kmeans", "--data", data, "--out", tmp_path / "taken", "-q")
    refused(r, "taken", "exists and is not a folder")
    assert (tmp_path / "taken").read_text() == "mine"
