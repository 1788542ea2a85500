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


def test_label_smoothing_mixes_the_target_with_the_mean_over_classes():
    torch.manual_seed(2)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    target[0, 0] = IGNORE_INDEX
    logp = logits.log_softmax(1).permute(0, 2, 3, 1)[target != IGNORE_INDEX]
    t = target[target != IGNORE_INDEX]
    nll = -logp.gather(1, t.unsqueeze(1)).mean()
    uniform = -logp.mean()  # the cross-entropy against 1/C for every class
    smoothed = make_loss("ce", label_smoothing=0.1)(logits, target)
    assert smoothed.item() == pytest.approx((0.9 * nll + 0.1 * uniform).item(), rel=1e-5)
    assert make_loss("ce", label_smoothing=0.0)(logits, target).item() == pytest.approx(
        nll.item(), rel=1e-5
    )


def test_label_smoothing_penalises_overconfidence_and_leaves_dice_focal_alone():
    target = torch.randint(0, 6, (1, 16, 16))
    sure = torch.nn.functional.one_hot(target, 6).permute(0, 3, 1, 2).float() * 50
    assert make_loss("ce")(sure, target).item() < 1e-6
    assert make_loss("ce", label_smoothing=0.1)(sure, target).item() > 1.0  # ~0.1 * 50
    logits = torch.randn(1, 6, 16, 16)
    plain, smooth = make_loss("dice+focal"), make_loss("dice+focal", label_smoothing=0.1)
    assert smooth(logits, target).item() == plain(logits, target).item()


def test_lovasz_is_one_minus_iou_for_one_hot_predictions():
    torch.manual_seed(3)
    target = torch.randint(0, 4, (2, 8, 8))
    target[0, :3] = IGNORE_INDEX
    guess = torch.randint(0, 4, (2, 8, 8))
    logits = torch.nn.functional.one_hot(guess, 4).permute(0, 3, 1, 2).float() * 60
    valid = target != IGNORE_INDEX
    ious = []
    for k in range(4):  # the classes present in the labels
        t, p = (target == k) & valid, (guess == k) & valid
        if t.any():
            ious.append((t & p).sum().item() / (t | p).sum().item())
    expected = sum(1 - iou for iou in ious) / len(ious)
    assert make_loss("lovasz")(logits, target).item() == pytest.approx(expected, abs=1e-5)
    perfect = torch.nn.functional.one_hot(target.where(valid, 0), 4).permute(0, 3, 1, 2) * 60.0
    assert make_loss("lovasz")(perfect, target).item() < 1e-5


def test_lovasz_gives_every_class_present_a_gradient():
    torch.manual_seed(4)
    logits = torch.randn(1, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (1, 8, 8))
    make_loss("ce+lovasz")(logits, target).backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad.abs().sum((0, 2, 3)) > 0).all()
