"""The exponential moving average of the weights: its arithmetic and its state."""

import pytest
import torch

from aerialseg.training.ema import WeightEMA


def net():
    # a stream of its own: reseeding the global one changed what later tests drew
    # (test_finetune's tiny parent, whose painted-class test is sensitive to it)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def test_the_average_moves_by_one_minus_the_warmed_up_decay():
    model = net()
    ema = WeightEMA(model, decay=0.5)
    start = model[0].weight.detach().clone()
    assert ema.current_decay() == pytest.approx(1 / 10)  # warm-up: (1 + 0) / (10 + 0)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 7
    ema.update(model)
    assert torch.allclose(ema.model[0].weight, start + 0.9)  # 1 - 0.1 of the way
    assert int(ema.model[1].num_batches_tracked) == 7  # a count is copied, not averaged
    ema.updates = 1000  # warm-up over: the decay asked for
    assert ema.current_decay() == 0.5
    before = ema.model[0].weight.clone()
    ema.update(model)
    assert torch.allclose(ema.model[0].weight, 0.5 * before + 0.5 * model[0].weight)


def test_the_average_is_a_frozen_copy_and_its_state_round_trips():
    model = net()
    ema = WeightEMA(model, decay=0.9)
    assert ema.model is not model and not ema.model.training
    assert not any(p.requires_grad for p in ema.model.parameters())
    with torch.no_grad():
        model[0].bias.add_(3.0)
    ema.update(model)
    other = WeightEMA(net(), decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    assert torch.equal(other.model[0].bias, ema.model[0].bias)
    assert not torch.equal(other.model[0].bias, model[0].bias)
