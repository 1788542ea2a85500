"""Device and precision choice, as far as a machine without a GPU can check them: auto is the
CPU here, a device this machine lacks is one clear error, the CPU keeps its precision rules,
configs and checkpoints never pin a device, and no code path calls .cuda()."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from aerialseg.config import TrainConfig, resolve_config
from aerialseg.errors import AerialSegError
from aerialseg.runtime import (
    autocast,
    channels_last,
    check_device,
    cpu_has_fast_bf16,
    grad_scaler,
    resolve_device,
    resolve_precision,
)

from .helpers import run_aerialseg

NO_GPU = not torch.cuda.is_available()
needs_no_gpu = pytest.mark.skipif(not NO_GPU, reason="checks what a machine without CUDA does")


@needs_no_gpu
def test_auto_is_the_cpu_and_a_missing_gpu_is_one_clear_error():
    assert resolve_device("auto") == resolve_device("cpu") == "cpu"
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(
            AerialSegError, match=rf"device {spec} is not available: .*--device cpu"
        ):
            resolve_device(spec)
    with pytest.raises(AerialSegError, match="unknown device 'gpu'; valid: auto, cpu, cuda"):
        check_device("gpu")


def test_cpu_precision_as_before_and_fp16_only_on_cuda():
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16") == "bf16"
    with pytest.raises(AerialSegError, match="fp16 autocast is for CUDA GPUs"):
        resolve_precision("fp16", "cpu")
    assert grad_scaler("bf16", "cpu") is None and grad_scaler("fp32", "cuda:0") is None
    assert channels_last("bf16", "cpu") and not channels_last("fp32", "cpu")
    assert channels_last("fp32", "cuda:0")  # on a GPU, always
    with autocast("bf16", "cpu"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled(
            "cpu"
        )


@needs_no_gpu
def test_commands_refuse_a_device_this_machine_lacks_in_one_line(tiny_model, tmp_path):
    r = run_aerialseg("segment", tmp_path, "--device", "gpu")
    assert r.returncode == 2 and "unknown device 'gpu'" in r.stderr
    (tmp_path / "a.png").write_bytes(b"")
    r = run_aerialseg("evaluate", "--model", tiny_model, "--data", tmp_path, "--device", "cuda:0")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "device cuda:0 is not available" in r.stderr


def test_a_resumed_run_takes_its_device_from_the_command_line_not_the_run_folder():
    saved = {**TrainConfig(device="cuda:1").to_dict(), "world_size": 4}  # as config.json
    assert resolve_config(None, None, {}, saved).device == "auto"
    assert resolve_config(None, None, {"device": "cpu"}, saved).device == "cpu"
    with pytest.raises(AerialSegError, match="unknown device"):
        TrainConfig(device="gpu0").check()


def test_no_cuda_calls_in_the_code():
    # every move to a device goes through runtime (to_device / prepare), never .cuda()
    src = Path(__file__).parents[1] / "src" / "aerialseg"
    hits = [
        f"{p.relative_to(src)}:{i}"
        for p in src.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\.cuda\(", line)
    ]
    assert hits == []


def test_freed_memory_is_kept_for_reuse_where_the_libc_allows_it(monkeypatch):
    import platform
    import sys

    from aerialseg import cli
    from aerialseg.runtime import reuse_freed_memory

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is glibc
    calls = []
    monkeypatch.setattr(cli, "reuse_freed_memory", lambda: calls.append(1))
    assert cli.main(["models"]) == 0  # the command sets it for its whole process
    assert calls == [1]


def test_thread_waits_are_made_passive_only_before_torch_loads_and_never_over_the_user(
    monkeypatch,
):
    import sys

    from aerialseg import cli
    from aerialseg.runtime import passive_thread_waits

    calls = []
    monkeypatch.setattr(cli, "passive_thread_waits", lambda: calls.append(1))
    assert cli.main(["models"]) == 0  # the command sets it for its whole process
    assert calls == [1]

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    monkeypatch.setattr(os, "environ", env)  # what the function writes stays in this test
    # torch is loaded in this test process: the OpenMP runtime has read its settings already
    assert "torch" in sys.modules
    assert passive_thread_waits() is False
    assert "OMP_WAIT_POLICY" not in env
    monkeypatch.delitem(sys.modules, "torch")  # put back after the test
    env["GOMP_SPINCOUNT"] = "300000"  # the user's choice stands
    assert passive_thread_waits() is False
    assert "OMP_WAIT_POLICY" not in env
    del env["GOMP_SPINCOUNT"]
    assert passive_thread_waits() is True
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_passive_waits_reach_a_fresh_process_before_torch_loads():
    import subprocess
    import sys

    code = (
        "import os, sys; from aerialseg.runtime import passive_thread_waits as p; "
        "print(p(), os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "PASSIVE", "False"]


def test_freed_memory_goes_back_only_over_the_bound(monkeypatch):
    import platform
    import sys

    from aerialseg import runtime

    rss = runtime.resident_bytes()
    linux = sys.platform.startswith("linux")
    assert (rss is not None) is linux and (not linux or rss > 10**7)  # a Python with numpy
    glibc = linux and platform.libc_ver()[0] == "glibc"
    assert runtime.release_freed_memory(0) is glibc  # the real malloc_trim
    trims = []
    monkeypatch.setattr(runtime, "_glibc", lambda name: trims.append)
    assert runtime.release_freed_memory(2**62) is False  # under the bound: nothing done
    assert trims == []
    if linux:
        assert runtime.release_freed_memory(0) is True
        assert trims == [0]
