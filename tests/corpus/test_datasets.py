"""Every command that reads a segmentation dataset against the bad datasets of the corpus:
``train``, ``evaluate``, ``baseline`` and ``classify train`` (aerial patches). Each stops
with one line naming the file or folder and the problem, and leaves no output behind."""

from __future__ import annotations

import pytest

from .cases import BAD_DATASETS
from .conftest import leftovers, refused

TINY = ("--epochs", "1", "--patch-size", "32", "--arch", "unet", "--base-filters", "4",
        "--batch-size", "4", "--patches-per-epoch", "8", "-q")  # fmt: skip


def commands(data, out, model):
    return {
        "train": ["train", "--data", data, "--out", out, *TINY],
        "evaluate": ["evaluate", "--data", data, "--model", model, "-q"],
        "baseline": ["baseline", "--method", "kmeans", "--data", data, "--out", out, "-q"],
        "classify-train": [
            "classify", "train", "--data", data, "--out", out, "--dataset", "landcover",
            "--epochs", "1", "--base-filters", "4", "--dense", "8", "-q",
        ],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["train", "evaluate", "baseline", "classify-train"])
@pytest.mark.parametrize("kind", BAD_DATASETS)
def test_bad_dataset(kind, command, cli, segmenter, tmp_path):
    if command == "baseline":
        pytest.importorskip("sklearn")
    make, name, says = BAD_DATASETS[kind]
    data = make(tmp_path)
    out = tmp_path / "out"
    r = cli(*commands(data, out, segmenter)[command])
    refused(r, name, says)
    assert leftovers(out) == []
