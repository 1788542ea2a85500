import pytest
import torch

from aerialseg.classes import IGNORE_INDEX
from aerialseg.errors import AerialSegError
from aerialseg.losses import LOSSES, make_loss


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_do_not_change_the_loss(name):
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 8, 8)
    target = torch.randint(0, 6, (2, 8, 8))
    target[:, :2] = IGNORE_INDEX
    other = logits.clone()
    other[:, :, :2] = torch.randn(2, 6, 2, 8) * 10  # change only ignored pixels
    loss = make_loss(name)
    assert loss(logits, target) == pytest.approx(loss(other, target).item(), rel=1e-6)


def test_perfect_prediction_has_near_zero_dice_focal_and_bad_has_more():
    target = torch.randint(0, 6, (1, 16, 16))
    perfect = torch.nn.functional.one_hot(target, 6).permute(0, 3, 1, 2).float() * 50
    wrong = torch.nn.functional.one_hot((target + 1) % 6, 6).permute(0, 3, 1, 2).float() * 50
    loss = make_loss("dice+focal")
    assert loss(perfect, target).item() < 1e-3
    assert loss(wrong, target).item() > 1.0


def test_class_weights_change_the_loss():
    torch.manual_seed(1)
    logits, target = torch.randn(1, 3, 8, 8), torch.randint(0, 3, (1, 8, 8))
    plain = make_loss("ce")(logits, target)
    weighted = make_loss("ce", torch.tensor([5.0, 1.0, 1.0]))(logits, target)
    assert plain.item() != pytest.approx(weighted.item())


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(AerialSegError, match="dice\\+focal"):
        make_loss("hinge")
