import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from aerialseg.classes import DUBAI, ClassTable
from aerialseg.errors import AerialSegError
from aerialseg.models import create_model
from aerialseg.models.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model(
        "unet",
        base_filters=8,
        normalization={"kind": "meanstd", "mean": [100.0, 110.0, 120.0], "std": [50.0, 55.0, 60.0]},
    )
    # make batch-norm statistics non-trivial so they must be saved too
    model.train()
    model(torch.rand(2, 3, 64, 64) * 255)
    model.eval()
    classes = ClassTable(("a", "b", "c", "d", "e", "f"), tuple((i, i, i) for i in range(6)))
    path = save_checkpoint(tmp_path / "m.safetensors", model, classes, metrics={"miou": 0.5})
    loaded, loaded_classes, meta = load_checkpoint(path)
    x = torch.rand(1, 3, 70, 50) * 255
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_classes == classes and meta["metrics"] == {"miou": 0.5}
    assert loaded.config == model.config


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"state_dict": _Evil()}))
    torch.save({"x": _Evil()}, tmp_path / "evil.pt")
    for path in (bad, tmp_path / "evil.pt"):
        with pytest.raises(AerialSegError, match="not an aerialseg model"):
            load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_foreign_safetensors_and_missing_files_are_refused(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(AerialSegError, match="not an aerialseg model"):
        load_checkpoint(tmp_path / "other.safetensors")
    with pytest.raises(AerialSegError, match="no such model file"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_default_table_travels_with_the_model(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", create_model("unet-seed"), DUBAI)
    _, classes, meta = load_checkpoint(path)
    assert classes == DUBAI and meta["model"]["name"] == "unet-seed"


def test_half_checkpoint_is_half_the_size_and_predicts_the_same(tmp_path, capsys):
    from aerialseg.cli import main

    torch.manual_seed(0)
    model = create_model("unet-effl0", decoder=[16, 8]).eval()
    full = save_checkpoint(tmp_path / "full.safetensors", model, DUBAI, note="kept")
    assert (
        main(["export", "--model", str(full), "--format", "half", "--out", str(tmp_path / "h")])
        == 0
    )
    out = capsys.readouterr().out
    assert "float16 weights" in out and "labels equal 100.00%" in out
    half_model, classes, meta = load_checkpoint(tmp_path / "h")
    assert meta["note"] == "kept" and classes == DUBAI
    assert (tmp_path / "h").stat().st_size < 0.55 * full.stat().st_size
    x = torch.rand(1, 3, 40, 56) * 255
    with torch.inference_mode():
        assert (half_model(x) - model(x)).abs().max() < 0.05
