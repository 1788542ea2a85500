"""The ISLR2 lab's CNN image classifier (and the seed paper's three-block variant).

ISLR2 section 10.9.3 (CIFAR-100): blocks of a 3x3 "same" conv with ReLU and a 2x2 max-pool,
doubling the filters from 32; then flatten, dropout, a 512-unit ReLU layer and the class layer.
Weights start as Keras starts them (Glorot uniform, zero bias), so the lab's recipe (RMSprop,
lr 1e-3, batch 128) trains as it did there.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import BaseModel


class CNNClassifier(BaseModel):
    """Raw RGB (N, 3, S, S) on the 0-255 scale -> class logits (N, C).

    ``input_size`` is fixed because the dense layer sees the flattened final feature map;
    callers resize or cut images to it. The default normalisation divides by 255, as the lab.
    """

    def __init__(
        self,
        num_classes: int = 100,
        input_size: int = 32,
        blocks: int = 4,
        base_filters: int = 32,
        dropout: float = 0.5,
        dense: int = 512,
        normalization: dict | None = None,
    ):
        super().__init__(num_classes, normalization)
        if blocks < 1 or input_size % 2**blocks:
            raise ValueError(f"input size {input_size} must be a multiple of 2**blocks={2**blocks}")
        self.input_size = input_size
        self.kwargs = dict(
            input_size=input_size,
            blocks=blocks,
            base_filters=base_filters,
            dropout=dropout,
            dense=dense,
        )
        layers: list[nn.Module] = []
        cin = 3
        for i in range(blocks):
            cout = base_filters * 2**i
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        side = input_size // 2**blocks
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(cin * side * side, dense),
            nn.ReLU(inplace=True),
            nn.Linear(dense, num_classes),  # softmax is in the loss / predict
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"expected {self.input_size}x{self.input_size} inputs, got "
                f"{x.shape[-1]}x{x.shape[-2]}"
            )
        return self.head(self.features(self.normalize(x)))
