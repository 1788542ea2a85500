"""Run by torchrun from test_distributed.py: one DDP training step of ``b`` samples per rank.

Every rank builds the same network and the same 2b-sample batch, trains on its own b samples
(rank r: samples r*b to r*b + b - 1) through aerialseg's process group, DDP wrapper and
training step, and rank 0 saves the loss (averaged over ranks), gradients and new weights.

    torchrun --nproc-per-node 2 tests/training/ddp_step.py OUT.pt B
"""

from __future__ import annotations

import sys

import torch

from aerialseg.losses import make_loss
from aerialseg.models import create_model
from aerialseg.training import distributed
from aerialseg.training.segmentation import train_step


def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 32, 32, generator=g) * 255, torch.randint(
        0, 6, (n, 32, 32), generator=g
    )


def network():
    # no batch norm: its statistics are per rank under DDP (SyncBatchNorm needs GPUs)
    torch.manual_seed(0)
    model = create_model("unet", base_filters=4, batch_norm=False)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def step(model, opt, x, y):
    """The step and what it produced: (loss, gradients, weights after the step)."""
    _, loss = train_step(model, opt, make_loss("ce"), x, y, "fp32")
    grads = [p.grad.detach().clone() for p in model.parameters()]
    return loss.detach(), grads, [p.detach().clone() for p in model.parameters()]


def main(out: str, b: int) -> None:
    ctx = distributed.setup("cpu")
    model, opt = network()
    ddp = distributed.wrap(model, ctx)
    x, y = batch(ctx.world_size * b)
    mine = slice(ctx.rank * b, ctx.rank * b + b)
    loss, grads, weights = step(ddp, opt, x[mine], y[mine])
    loss = ctx.all_sum(loss) / ctx.world_size
    if ctx.main:
        torch.save({"loss": loss, "grads": grads, "weights": weights}, out)
    del ddp
    distributed.teardown(ctx)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
