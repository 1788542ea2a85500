"""A depthwise convolution for bf16 training on a CPU, with a backward pass built from fast parts.

Why: oneDNN (torch's CPU convolutions, 2.13) runs a bf16 depthwise conv forward about 3x
faster than fp32, and its backward fast for stride 1 with 3x3 kernels, but its bf16 backward
is 3-30x slower than fp32 in two cases: the input's gradient of a stride-2 conv, and the
weight's gradient of a 5x5 kernel. So the depthwise convs of ``unet-effl0`` used to train in
fp32 (their inputs converted, their outputs fp32 into fp32 batch norms). Here everything is
bf16 (as autocast makes every other conv) and the two slow cases are rewritten as convolutions
oneDNN does fast:

- input gradient, stride 2: each of the four output-pixel parities (row, column) of the
  input's gradient is a stride-1 depthwise conv of the output gradient with the kernel's taps
  of that parity, flipped (the transposed conv split into its phases; no zeros multiplied);
- weight gradient, 5x5: with batch and channels swapped, ``dW[c] = sum_n x[n, c] * g[n, c]``
  (cross-correlation) is one depthwise conv of the input by the output gradient as the kernel
  (dilated by the stride), giving ``k x k`` per (channel, image), summed over the batch.

Same maths as autograd's, in bf16 with fp32 accumulation inside each conv (the 5x5 weight
gradient rounds each image's share to bf16 before the batch sum); tests compare them. Measured
in ``benchmarks/keras_anchor.py`` (docs/experiments.md, *A quicker step*).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_backward = torch.ops.aten.convolution_backward


def _input_grad_stride2(g: torch.Tensor, w: torch.Tensor, side: tuple[int, int]) -> torch.Tensor:
    """The gradient of an unpadded stride-2 depthwise conv's input of ``side``, phase by phase:
    input pixel 2a+p gets g[a - t] * w[p + 2t] summed over t (likewise for columns)."""
    n, c, h, wd = g.shape
    k = w.shape[-1]
    # channels_last, as the input was and as the next layer back wants it
    out = g.new_empty(n, side[0], side[1], c).permute(0, 3, 1, 2)
    for p in (0, 1):
        taps_p, rows = len(range(p, k, 2)), (side[0] - p + 1) // 2
        for q in (0, 1):
            taps_q, cols = len(range(q, k, 2)), (side[1] - q + 1) // 2
            phase = w[:, :, p::2, q::2].flip(-2, -1).contiguous()
            # g needs taps - 1 zeros before it and rows - h after; the conv's own (symmetric)
            # padding and a crop spare a padded copy of g per phase
            pr, pc = max(taps_p - 1, rows - h), max(taps_q - 1, cols - wd)
            r0, c0 = pr - taps_p + 1, pc - taps_q + 1
            gx = F.conv2d(g, phase, None, 1, (pr, pc), 1, c)
            out[:, :, p::2, q::2] = gx[..., r0 : r0 + rows, c0 : c0 + cols]
    return out


def _weight_grad_by_batch(x, g, k: int, stride: int, padding: int) -> torch.Tensor:
    """dW[c, i, j] = sum over n, y, x of x[n, c, s*y + i - pad, s*x + j - pad] * g[n, c, y, x], as
    one depthwise conv over (channel, image) pairs, then summed over the images (input rows and
    columns that no window reached, when the side does not fit the stride, are cropped off)."""
    n, c = g.shape[:2]
    xs = x.transpose(0, 1).reshape(1, c * n, *x.shape[-2:])
    gs = g.transpose(0, 1).reshape(c * n, 1, *g.shape[-2:])
    per_image = F.conv2d(xs, gs, None, 1, padding, stride, c * n)[..., :k, :k]
    return per_image.reshape(c, n, k, k).sum(1).unsqueeze(1)


class _DepthwiseBF16(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride: int, padding: int):
        x, w = x.to(torch.bfloat16), weight.to(torch.bfloat16)
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.padding, ctx.weight_dtype = stride, padding, weight.dtype
        return F.conv2d(x, w, None, stride, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        s, pad, c, k = ctx.stride, ctx.padding, x.shape[1], w.shape[-1]
        g = g.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        conv = ([s, s], [pad, pad], [1, 1], False, [0, 0], c)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            if s == 1:
                gx = _backward(g, x, w, None, *conv, [True, False, False])[0]
            else:
                assert s == 2 and pad == 0, "stride-2 depthwise convs come unpadded (SameConv)"
                gx = _input_grad_stride2(g, w, x.shape[-2:])
        if ctx.needs_input_grad[1]:
            if k <= 3:
                gw = _backward(g, x, w, None, *conv, [False, True, False])[1]
            else:
                gw = _weight_grad_by_batch(x, g, k, s, pad)
            gw = gw.to(ctx.weight_dtype)
        return gx, gw, None, None


def depthwise_bf16(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int):
    """``F.conv2d(x, weight, None, stride, padding, groups=channels)`` in bf16 (no bias, no
    dilation, square kernel; stride 2 only unpadded), with the backward above."""
    return _DepthwiseBF16.apply(x, weight, stride, padding)
