"""``aerialseg classify``: train, evaluate and predict as a user runs them."""

import json

import numpy as np
from PIL import Image

from aerialseg.cli import main
from aerialseg.config import ClassifyConfig
from aerialseg.training.classification import train_classifier

from ..helpers import aerialseg_here as aerialseg  # main() in this process: no imports to redo
from ..helpers import write_cifar


def cli(capsys, *args):
    """The CLI in-process (cheaper than a subprocess): (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_two_step_training_end_to_end(tmp_path, capsys):
    data = write_cifar(tmp_path / "c")
    run = tmp_path / "run"
    r = aerialseg(
        "classify", "train", "--data", data, "--out", run, "--epochs", "2",
        "--batch-size", "16", "--base-filters", "8", "--dense", "32", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Epoch 2/2" in r.stdout and "val_accuracy" in r.stdout
    for f in ("best.safetensors", "last.safetensors", "history.csv", "curves.png", "confusion.png"):
        assert (run / f).stat().st_size > 0, f
    assert len((run / "history.csv").read_text().splitlines()) == 3
    assert json.loads((run / "status.json").read_text())["status"] == "complete"

    # resume: extend the same run by one epoch, with the settings it was started with
    code, out, err = cli(capsys, "classify", "train", "--resume", run, "--epochs", "3", "-q")
    assert code == 0, err
    assert "resuming at epoch 3" in out and "Epoch 3/3" in out
    assert len((run / "history.csv").read_text().splitlines()) == 4
    assert json.loads((run / "config.json").read_text())["dense"] == 32

    code, out, err = cli(
        capsys, "classify", "evaluate", "--model", run / "best.safetensors", "--json"
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["split"] == "test" and res["images"] == 20
    assert np.array(res["confusion_matrix"]).sum() == 20
    assert set(res["per_class_accuracy"]) == {"fine0", "fine1", "fine2", "fine3"}
    assert 0 <= res["accuracy"] <= 1

    Image.new("RGB", (50, 40), (220, 30, 30)).save(tmp_path / "red.png")
    code, out, err = cli(
        capsys,
        "classify",
        "predict",
        "--model",
        run / "best.safetensors",
        tmp_path / "red.png",
        "-q",
    )
    assert code == 0, err
    assert out.startswith(str(tmp_path / "red.png")) and "fine" in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    for args in (
        ("classify", "evaluate", "--model", tmp_path / "bad.safetensors"),
        ("classify", "train", "--data", tmp_path / "nope", "--out", tmp_path / "r"),
        ("classify", "train", "--data", tmp_path, "--out", tmp_path),  # not empty
    ):
        code, _, err = cli(capsys, *args)
        assert code == 2, err
        assert err.startswith("aerialseg: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_landcover_classifier_and_patch_maps(tiny_dataset, tmp_path, capsys):
    cfg = ClassifyConfig(data=str(tiny_dataset), size=16, epochs=1, batch_size=8, augment=True)
    cfg.val_fraction, cfg.base_filters, cfg.dense = 0.34, 4, 16
    lines = []
    result = train_classifier(cfg, tmp_path / "run", log=lines.append, progress=False)
    assert lines[0].startswith("landcover: ") and lines[1].startswith("Epoch 1/1")
    assert 0 <= result["best"]["val_accuracy"] <= 1
    img = tiny_dataset / "Tile 1" / "images" / "image_part_001.jpg"
    model = tmp_path / "run" / "best.safetensors"
    out = tmp_path / "o"
    code, _, err = cli(
        capsys, "classify", "predict", "--model", model, "--patches", "--out", out, img
    )
    assert code == 0, err
    for suffix in ("_mask.png", "_overlay.jpg", "_stats.json"):
        assert (tmp_path / "o" / f"image_part_001{suffix}").stat().st_size > 0
