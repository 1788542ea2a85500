"""models.depthwise: the bf16 depthwise conv that unet-effl0 trains with on a CPU gives
autograd's forward and gradients, to bf16 rounding."""

import pytest
import torch
import torch.nn.functional as F

from aerialseg.models.depthwise import depthwise_bf16
from aerialseg.models.efficientnet import SameConv


def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t.bfloat16().double()  # a value bf16 holds exactly, in a reference's precision


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("side", [(16, 16), (12, 20)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_forward_and_gradients_match_autograd(kernel, stride, side, channels_last):
    torch.manual_seed(0)
    conv = SameConv(6, 6, kernel, stride, groups=6)
    x = torch.randn(3, 6, *side)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    g = torch.randn(y.shape)
    gx, gw = torch.autograd.grad(y, (x, conv.weight), g.bfloat16())
    # the reference: autograd on the same bf16 values, in float64
    xr = _bf16(x.detach()).requires_grad_()
    wr = _bf16(conv.weight.detach()).requires_grad_()
    xp = F.pad(xr, conv.pads) if conv.pads else xr
    yr = F.conv2d(xp, wr, None, stride, conv.padding, 1, 6)
    rx, rw = torch.autograd.grad(yr, (xr, wr), _bf16(g))
    assert y.dtype == torch.bfloat16 and gw.dtype == torch.float32 and y.shape == yr.shape
    for got, ref in ((y, yr), (gx, rx), (gw, rw)):
        scale = ref.abs().max().item()
        assert (got.double() - ref).abs().max().item() <= 2**-7 * scale  # bf16: 8 bits


def test_a_biased_depthwise_conv_gets_its_bias():
    """unet-effl0-fbn's depthwise convs have biases."""
    torch.manual_seed(0)
    conv = SameConv(4, 4, 3, groups=4, bias=True)
    torch.nn.init.uniform_(conv.bias, 1.0, 2.0)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
        y.sum().backward()
    with torch.no_grad():
        ref = F.conv2d(x, conv.weight, conv.bias, 1, 1, 1, 4)
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(conv.bias.grad, torch.full((4,), 128.0))  # 2 images of 8 x 8


def test_same_inputs_same_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 14, 14, requires_grad=True)
    w = torch.randn(8, 1, 5, 5, requires_grad=True)
    runs = [torch.autograd.grad(depthwise_bf16(x, w, 2, 0).float().square().sum(), (x, w))
            for _ in range(2)]  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("side", [13, 14])
def test_input_gradient_where_the_windows_miss_the_last_pixels(kernel, side):
    """Stride 2 over a side the windows do not fit: the pixels no window reads get zeros."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, side, side).bfloat16().requires_grad_()
    w = torch.randn(4, 1, kernel, kernel).bfloat16()
    y = depthwise_bf16(x, w, 2, 0)
    g = torch.randn(y.shape).bfloat16()
    (gx,) = torch.autograd.grad(y, x, g)
    xr = x.detach().double().requires_grad_()
    (rx,) = torch.autograd.grad(F.conv2d(xr, w.double(), None, 2, 0, 1, 4), xr, g.double())
    assert (gx.double() - rx).abs().max().item() <= 2**-7 * rx.abs().max().item()
