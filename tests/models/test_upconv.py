"""models.upconv: a decoder step's first conv without the upsampled map gives the plain
upsample-concatenate-conv's output and gradients."""

import pytest
import torch
import torch.nn.functional as F

from aerialseg.models.efficientnet import EfficientUNet
from aerialseg.models.upconv import upsampled_conv


def _plain(low, skip, weight):
    y = F.interpolate(low, scale_factor=2.0, mode="nearest")
    y = torch.cat([y, skip], 1) if skip is not None else y
    return F.conv2d(y, weight, None, 1, 1)


@pytest.mark.parametrize("side", [(4, 4), (3, 5)])
@pytest.mark.parametrize("with_skip", [True, False])
@pytest.mark.parametrize("channels_last", [True, False])
def test_output_and_gradients_match_the_plain_form(side, with_skip, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    low = torch.randn(2, 5, *side, dtype=torch.float64).contiguous(memory_format=fmt)
    skip = torch.randn(2, 3, 2 * side[0], 2 * side[1], dtype=torch.float64) if with_skip else None
    weight = torch.randn(4, 5 + (3 if with_skip else 0), 3, 3, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (low, skip, weight) if t is not None]
    y, y_ref = upsampled_conv(low, skip, weight), _plain(low, skip, weight)
    g = torch.randn_like(y_ref)
    grads = torch.autograd.grad(y, inputs, g)
    grads_ref = torch.autograd.grad(y_ref, inputs, g)
    assert y.shape == y_ref.shape and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, ref in zip(grads, grads_ref):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_a_training_step_sees_the_function_inference_sees():
    """Under bf16 autocast with gradients (training on a CPU) the model takes models.upconv and
    models.depthwise; without gradients the plain convs: the same logits to bf16 rounding."""
    torch.manual_seed(0)
    model = EfficientUNet(decoder=(16, 16, 8, 8)).eval()
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = model(x)
        with torch.no_grad():
            plain = model(x)
    assert trained.requires_grad and not plain.requires_grad
    scale = plain.float().abs().max().item()
    assert (trained.float() - plain.float()).abs().max().item() <= 0.05 * scale
