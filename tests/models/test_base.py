import copy

import pytest
import torch

from aerialseg.models import create_model
from aerialseg.models.base import fold_batchnorm


@pytest.mark.parametrize(
    "arch, kwargs",
    [
        ("unet", {"base_filters": 8}),  # conv/BN pairs as Sequential neighbours
        ("unet-effl0", {"decoder": [16, 8]}),  # the encoder's: attributes called by name
        ("unet-effl2", {"decoder": [16, 8], "context": "aspp"}),  # and the context module's
        ("unet-effl0-fbn", {"decoder": [16, 8]}),  # the decoder's only (none in the encoder)
    ],
)
def test_folding_batch_norm_removes_every_one_and_keeps_eval_outputs(arch, kwargs):
    torch.manual_seed(0)
    m = create_model(arch, **kwargs).train()
    for _ in range(3):  # running statistics away from their initial values
        m(torch.rand(2, 3, 64, 64) * 255)
    m.eval()
    folded = fold_batchnorm(copy.deepcopy(m))
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in folded.modules())
    x = torch.rand(1, 3, 70, 90) * 255
    with torch.no_grad():
        assert torch.allclose(m(x), folded(x), atol=1e-4)
