import pytest
import torch

from aerialseg.errors import AerialSegError
from aerialseg.models import create_model, list_models
from aerialseg.models.unet import Dropout


def test_registry_error_lists_valid_names():
    with pytest.raises(AerialSegError) as e:
        create_model("resnet")
    for name in list_models():
        assert name in str(e.value)


def test_seed_unet_matches_the_paper():
    m = create_model("unet-seed")
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    widths = sorted({c.out_channels for c in convs if c.kernel_size == (3, 3)})
    assert widths == [16, 32, 64, 128, 256]
    drops = [x.p for x in m.modules() if isinstance(x, Dropout)]
    assert drops == [0.2] * 4 + [0.3] + [0.2] * 4
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    ups = [x for x in m.modules() if isinstance(x, torch.nn.ConvTranspose2d)]
    assert [u.kernel_size for u in ups] == [(2, 2)] * 4
    # sum of k*k*cin*cout + cout over the Keras layers (3x3 convs, 2x2 transposed, 1x1 head)
    assert sum(p.numel() for p in m.parameters()) == 1_941_190


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("hw", [(257, 131), (17, 40), (64, 64), (5, 9)])
def test_any_input_size_gives_same_size_output(name, hw):
    m = create_model(name, num_classes=6).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, *hw) * 255)
    assert out.shape == (1, 6, *hw)


def test_width_depth_options():
    m = create_model("unet", base_filters=8, depth=3, num_classes=4)
    assert m(torch.rand(2, 3, 40, 40)).shape == (2, 4, 40, 40)
    assert m.config["base_filters"] == 8 and m.config["depth"] == 3


def test_predict_returns_probabilities_without_grad():
    m = create_model("unet", num_classes=3)
    p = m.predict(torch.rand(1, 3, 32, 32) * 255)
    assert not p.requires_grad and not m.training
    assert torch.allclose(p.sum(1), torch.ones(1, 32, 32), atol=1e-5)


@pytest.mark.parametrize("p", [0.2, 0.3])
def test_dropout_keeps_the_right_share_and_scales_like_nn_dropout(p):
    torch.manual_seed(0)
    x = torch.ones(8, 16, 64, 64).contiguous(memory_format=torch.channels_last)
    d = Dropout(p).train()
    y = d(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    assert torch.allclose(y[kept], torch.tensor(1 / (1 - p)))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(d(x), y)  # a fresh mask every call
    assert torch.equal(d.eval()(x), x)
    xg = torch.ones(2, 3, 4, 4, requires_grad=True)
    d.train()(xg).sum().backward()
    grads = xg.grad.unique()
    assert all(g == 0 or abs(g - 1 / (1 - p)) < 1e-6 for g in grads.tolist())
