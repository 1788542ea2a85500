"""Where and how a model runs: device, numeric precision, autocast and memory format.

- device: ``auto`` takes a CUDA GPU when there is one (then Apple's MPS), else the CPU;
  ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` name one. Checkpoints never store a device.
- precision: ``auto`` is bf16 autocast on a GPU that does bf16 (fp16 with a grad scaler on
  one that does not) and on a CPU with native bf16 (AVX512-BF16 or AMX), else fp32.
- On CUDA, models and inputs are channels_last, and inputs travel through pinned memory with
  non-blocking copies. On the CPU everything is as it always was.

torch is imported inside the functions that use it, so :data:`PRECISIONS`,
:func:`check_device` and the CPU case of :func:`resolve_precision` serve command-line help and
checks without importing torch.
"""

from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AerialSegError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .models import SegmentationModel

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
PRECISION_HELP = (
    "auto: bf16 on a GPU (fp16 where it lacks bf16) and on a CPU that does bf16 natively, "
    "else fp32; fp16 is for CUDA only"
)
DEVICE_HELP = "auto (a GPU when there is one, else the CPU), cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_device(spec: str) -> str:
    """``spec`` if it is a device's spelling (no torch needed: for command-line checks)."""
    if not isinstance(spec, str) or not _DEVICE.fullmatch(spec):
        raise AerialSegError(f"unknown device {spec!r}; valid: auto, cpu, cuda, cuda:N, mps")
    return spec


def resolve_device(spec: str = "auto", local_rank: int = 0) -> str:
    """The device to run on: "cpu", "cuda:N" or "mps". ``auto`` and ``cuda`` take GPU
    ``local_rank`` (one GPU per process under torchrun). One clear error for a device this
    machine does not have."""
    check_device(spec)
    if spec == "cpu":
        return "cpu"
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            spec = "cuda"
        elif _mps_available():
            return "mps"
        else:
            return "cpu"
    if spec == "mps":
        if not _mps_available():
            raise AerialSegError("device mps is not available (no Apple GPU); use --device cpu")
        return "mps"
    if not torch.cuda.is_available():
        why = (
            f"this torch ({torch.__version__}) was built without CUDA"
            if torch.version.cuda is None
            else "no CUDA GPU is visible"
        )
        raise AerialSegError(f"device {spec} is not available: {why}; use --device cpu")
    index = int(spec.split(":")[1]) if ":" in spec else local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise AerialSegError(
            f"device cuda:{index} is not available: this machine has {count} CUDA GPU"
            + "s" * (count != 1)
        )
    return f"cuda:{index}"


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def device_type(device: str) -> str:
    """The type of a resolved device: "cpu", "cuda" or "mps"."""
    return device.split(":")[0]


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU does bf16 math natively (AVX512-BF16 or AMX); elsewhere bf16 autocast
    is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """bf16, fp16 or fp32 for ``precision`` on the resolved ``device``."""
    if precision not in PRECISIONS:
        raise AerialSegError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    kind = device_type(device)
    if kind == "cuda":
        import torch

        if precision == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return precision
    if precision == "fp16":
        raise AerialSegError(f"fp16 autocast is for CUDA GPUs; on {kind} use bf16 or fp32")
    if precision == "auto":
        return "bf16" if kind == "cpu" and cpu_has_fast_bf16() else "fp32"
    return precision


def autocast(precision: str, device: str = "cpu"):
    """bf16 or fp16 autocast on the device's type, or nothing for fp32."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type(device), dtype=dtype)


def channels_last(precision: str, device: str = "cpu") -> bool:
    """Whether the model and its inputs use channels_last: what oneDNN's bf16 convolutions
    want on a CPU (fp32 gains nothing there), and what cuDNN's tensor cores want on CUDA."""
    return device_type(device) == "cuda" or precision == "bf16"


def grad_scaler(precision: str, device: str = "cpu"):
    """A GradScaler for fp16 training (bf16 and fp32 need none), else None."""
    if precision != "fp16":
        return None
    import torch

    return torch.amp.GradScaler(device_type(device))


def prepare(model: SegmentationModel, precision: str, device: str = "cpu") -> SegmentationModel:
    """The model on ``device``, in the memory format ``precision`` wants, in eval mode."""
    import torch

    if device != "cpu":
        model = model.to(device)
    if channels_last(precision, device):
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def to_device(t: torch.Tensor, device: str) -> torch.Tensor:
    """``t`` on ``device``: unchanged on the CPU; to CUDA through pinned memory, without
    waiting for the copy."""
    if device == "cpu":
        return t
    if device_type(device) == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def to_tensor(rgb: np.ndarray, precision: str = "fp32", device: str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float on the 0-255 scale: what the model is fed."""
    import torch

    if device == "cpu":
        x = torch.tensor(rgb).permute(2, 0, 1).unsqueeze(0).float()  # copies: may be read-only
    else:  # the bytes travel, the floats are made on the device
        x = to_device(torch.tensor(rgb), device).permute(2, 0, 1).unsqueeze(0).float()
    if channels_last(precision, device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def predict_logits(
    model: SegmentationModel, rgb: np.ndarray, precision: str, device: str = "cpu"
) -> torch.Tensor:
    """Logits (1, C, H, W) float32, on ``device``, for a whole image in one forward pass."""
    import torch

    model.eval()
    with torch.inference_mode(), autocast(precision, device):
        return model(to_tensor(rgb, precision, device)).float()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def _glibc(name: str):
    """glibc's function ``name``, or None where the C library is not glibc."""
    import ctypes

    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def reuse_freed_memory() -> bool:
    """Make glibc keep the memory that freed tensors leave, for the next ones; True if set.

    Why: a forward pass over a 1024² window makes tensors of tens to hundreds of MB. glibc maps
    every block over its mmap threshold (32 MB at most) fresh from the kernel, which zeroes
    each page on first touch, and unmaps it when freed; the next pass pays again. That was a
    third of the CPU time of a 1088² forward of unet-effl0 on this machine
    (benchmarks/malloc_reuse.py). With both thresholds at 1 GiB, blocks come from the heap and
    stay there: the peak is what it was, only it is not handed back between passes. A
    process-wide setting, so the ``aerialseg`` command makes it, never an import; outside
    glibc (macOS, Windows, musl) it does nothing.
    """
    import sys

    mallopt = _glibc("mallopt") if sys.platform.startswith("linux") else None
    if mallopt is None:
        return False
    done = [mallopt(_M_MMAP_THRESHOLD, 1 << 30), mallopt(_M_TRIM_THRESHOLD, 1 << 30)]
    return all(done)


def resident_bytes() -> int | None:
    """This process's resident memory (RSS) in bytes, or None where /proc is not there."""
    import os

    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def release_freed_memory(above: int) -> bool:
    """Hand the heap's freed pages back to the kernel (glibc's malloc_trim) when this process
    holds more than ``above`` bytes resident; True if it did.

    Why: with :func:`reuse_freed_memory`, freed blocks stay in the heap, and the blocks that
    outlive a forward pass (GDAL's cached tiles, the bands handed out) land among the holes
    the next pass left, so the heap creeps up over hundreds of windows: streaming a 10 000²
    GeoTIFF, 0.8 GB of heap held 0.2 GB in use between passes. Trimming makes the next pass
    fault its pages in again (a 1152² forward took 0.68 CPU-s instead of 0.53 when trimmed
    before every pass), so it is done only when the resident memory is over ``above``.
    Linux with glibc only."""
    rss = resident_bytes()
    trim = _glibc("malloc_trim")
    if rss is None or trim is None or rss <= above:
        return False
    trim(0)
    return True


def passive_thread_waits() -> bool:
    """Make torch's OpenMP threads sleep, not spin, while they wait for each other; True if
    set here (before torch is imported: the OpenMP runtime reads it once, when it loads).

    Why: every parallel operator ends at a barrier, and by default libgomp's idle threads
    spin there for some 300 000 iterations before sleeping. On a machine whose cores are
    shared with other work, the thread that spins burns the time slice its late partner
    needs: on this project's 2-core machine, shared, a training step of unet-effl0 on 2
    threads ran 2.7 to 5x slower than with the waits passive (``GOMP_SPINCOUNT=300000``,
    libgomp's default, brings the spinning back: benchmarks/keras_anchor.py). On an idle machine a
    passive wait costs a futex wake per operator, microseconds against the milliseconds of
    a convolution. A setting of the user's (OMP_WAIT_POLICY, or libgomp's GOMP_SPINCOUNT)
    wins; a process-wide one, so the ``aerialseg`` command makes it, never an import.
    """
    import os
    import sys

    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return False
    if "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
