"""Training on several processes, GPUs or machines: PyTorch DDP, started by ``torchrun``.

``torchrun --nproc-per-node N -m aerialseg train ...`` (or ``aerialseg train --nproc N``, which
starts torchrun itself) runs N copies of the command; torchrun's environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...) tell each its place. :func:`setup` joins them into
one process group: NCCL on CUDA GPUs (one per process, the local rank's), gloo on the CPU.

What the training loop does with that (see :mod:`.loop`): the gradients are averaged by DDP;
each rank draws its own crops from a stream seeded by (seed, epoch, rank) and does its share
of an epoch's patches; metrics are summed over ranks; only rank 0 writes the run folder and
prints. A run started without torchrun is the plain single process it always was.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

from ..errors import AerialSegError
from ..runtime import device_type, resolve_device

# what torchrun sets in every process it starts
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def under_torchrun() -> bool:
    return all(k in os.environ for k in ENV)


def reports() -> bool:
    """Whether this process prints a run's results: rank 0, or any process outside torchrun."""
    return os.environ.get("RANK", "0") == "0"


@dataclass
class Context:
    """This process's place in the run: rank 0 of 1, on ``device``, when not distributed."""

    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # "nccl" or "gloo" once a process group is joined

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over all ranks (unchanged in a single process)."""
        if not self.distributed:
            return values
        import torch.distributed as dist

        t = values.to(self._comm_device())
        dist.all_reduce(t)
        return t.to(values.device)

    def from_main(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (so that clocks and decisions agree)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.broadcast(t, src=0)
        return float(t.item())

    def reduce_metrics(self, metrics) -> None:
        """Sum the attributes a metrics accumulator names in ``SUMMED`` (tensors and Python
        numbers) over all ranks, in place."""
        if not self.distributed:
            return
        for name in metrics.SUMMED:
            v = getattr(metrics, name)
            if isinstance(v, torch.Tensor):
                setattr(metrics, name, self.all_sum(v.clone()))
            else:
                dtype = torch.float64 if isinstance(v, float) else torch.int64
                setattr(metrics, name, type(v)(self.all_sum(torch.tensor(v, dtype=dtype)).item()))

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[torch.device(self.device).index])
            else:
                dist.barrier()

    def _comm_device(self) -> str:
        return self.device if self.backend == "nccl" else "cpu"


def setup(device: str = "auto") -> Context:
    """Join torchrun's process group, if this process was started by torchrun; else a
    single-process context on ``device``."""
    if not under_torchrun():
        return Context(device=resolve_device(device))
    import torch.distributed as dist

    rank, world, local = (int(os.environ[k]) for k in ENV)
    if world > 1 and device.startswith("cuda:"):
        raise AerialSegError(
            f"--device {device} with {world} processes: give --device cuda (or auto) and each "
            "process takes the GPU of its local rank"
        )
    check_gpus(device, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    resolved = resolve_device(device, local_rank=local)
    backend = "nccl" if device_type(resolved) == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    ctx = Context(resolved, rank, world, local, backend)
    # Every rank has checked the run folder before any rank may write to it.
    ctx.barrier()
    return ctx


def check_gpus(device: str, nproc: int) -> None:
    """One clear error when ``nproc`` processes on this machine would each need a GPU of
    their own (``device`` auto or cuda, with CUDA present) and there are fewer."""
    if device not in ("auto", "cuda") or not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    if nproc > count:
        raise AerialSegError(
            f"{nproc} processes on this machine need a GPU each, but it has {count}: use "
            f"--nproc {count} (torchrun --nproc-per-node {count}), or --device cpu"
        )


def teardown(ctx: Context) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            # All ranks leave together: a rank that tears down while another still talks to
            # it (or to rank 0's rendezvous store) aborts the other with SIGABRT.
            dist.barrier()
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """The model that training steps call: DDP around ``model`` in a process group (its
    parameters and buffers are broadcast from rank 0 now), else ``model`` itself."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(ctx.device).index] if ctx.backend == "nccl" else None
    return DistributedDataParallel(model, device_ids=ids)


def launch(nproc: int, argv: list[str]) -> int:
    """``aerialseg ARGV`` in ``nproc`` processes on this machine, through torchrun (its
    standalone rendezvous on a free local port). Each process gets the CPU's cores / nproc
    threads unless OMP_NUM_THREADS says otherwise (torchrun would give each one thread)."""
    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        run.main(["--standalone", f"--nproc-per-node={nproc}", "-m", "aerialseg", *argv])
    except ChildFailedError as e:
        ranks = sorted(e.failures)
        print(
            f"aerialseg: {len(ranks)} of {nproc} training processes failed (ranks "
            f"{', '.join(map(str, ranks))}); their errors are above",
            file=sys.stderr,
        )
        return 1
    return 0
