"""An exponential moving average of a model's weights (``--ema DECAY``).

Each step moves the average a share ``1 - decay`` towards the trained weights. With strong
augmentation and batch 16, the weights after the last step are one noisy draw around where
training has got to; the average over the last steps sits nearer the middle, for no extra
training. Batch-norm statistics are averaged the same way, so they match the averaged weights.
"""

from __future__ import annotations

import copy

import torch


class WeightEMA:
    """The average (``model``: a frozen copy in eval mode) of a trained model's weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        # Warm-up, as TensorFlow's ExponentialMovingAverage with num_updates: without it the
        # average of a short run mostly holds the starting weights (0.999 ** 343 = 0.71 after
        # the 343 steps of a 7 x 770-patch run); with it, after n steps, roughly the last
        # n / 9 steps count, until ``decay`` is reached (0.99 after 890 steps).
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the average towards ``model``'s weights (call after each optimiser step)."""
        d = self.current_decay()
        self.updates += 1
        for avg, now in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(now, 1 - d)
            else:  # e.g. batch norm's step counter: a count, not a quantity to average
                avg.copy_(now)

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
