"""Kill -9 drills: a real ``aerialseg`` command in a child process, killed at chosen moments.

The child is the real command (``aerialseg.cli.main``, as ``python -m aerialseg`` runs it)
with one addition that changes nothing it does: a SIGUSR1 handler that writes the Python
stack to a file, so that the drill can ask "where are you?" right before it sends SIGKILL.
That is how a kill is aimed at a phase (training steps, validation, a checkpoint being
written) and how the drill reports where each kill really landed. (A Python-level handler,
run between two bytecodes of the main thread: ``faulthandler``'s, run inside the signal,
crashed the child now and then.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Tiny networks on a busy machine: one thread is several times faster than two that wait
# for each other. (PYTHONUNBUFFERED: a kill loses no printed line.)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}

CHILD = r"""
import os, signal, sys, traceback
FD = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
BUSY = []
def where(signum, frame):
    if BUSY:  # a second question while answering the first: one answer is enough
        return
    BUSY.append(1)
    os.write(FD, ("".join(traceback.format_stack(frame)) + "END\n").encode())
    BUSY.clear()
signal.signal(signal.SIGUSR1, where)
os.write(FD, b"ready\n")
from aerialseg.cli import main
sys.exit(main(sys.argv[2:]))
"""

# The real command, started at a signal: imports done (python, torch, the command's module),
# it says so in argv[1] and waits for the file argv[2] to exist, so that two children can be
# made to start their work at the same moment.
GATED = r"""
import importlib, os, sys, time
import torch
from aerialseg.cli import COMMANDS, main
importlib.import_module("aerialseg.cli." + COMMANDS[sys.argv[3]][0])
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
sys.exit(main(sys.argv[3:]))
"""


@contextmanager
def one_thread():
    """This process's torch on one thread, as the children (same numbers, bit for bit)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def start_together(commands: list[list], folder: Path) -> list[subprocess.Popen]:
    """Start ``aerialseg`` with each argument list, all beginning their work at once."""
    gate = folder / "gate"
    procs = []
    for i, args in enumerate(commands):
        ready = folder / f"ready_{i}"
        procs.append(subprocess.Popen(
            [sys.executable, "-c", GATED, str(ready), str(gate), *map(str, args)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **ONE_THREAD},
        ))  # fmt: skip
    for i, p in enumerate(procs):
        while not (folder / f"ready_{i}").exists():
            assert p.poll() is None, p.communicate()[1]
            time.sleep(0.01)
    gate.touch()
    return procs


# Where a stack is, innermost frame first: (phase, functions that mean it).
PHASES = (
    ("checkpoint", ("save_checkpoint", "save_train_state")),
    ("history and curves", ("_write_history", "_write_curves", "training_curves")),
    ("validation", ("validate",)),
    ("training", ("_train_epoch", "training_step", "train_step")),
    ("loading", ("setup", "load_dataset", "load_segmenter")),
    ("final figures", ("on_fit_end",)),
    ("run files", ("write_text", "on_fit_start")),
    ("writing outputs", ("write_staged", "write_outputs", "side_by_side", "save_image")),
    ("predicting", ("predict_bands", "bands")),
)


def phase_of(stack: str) -> str:
    funcs = re.findall(r'File ".*", line \d+, in (\w+)', stack)
    for name, marks in PHASES:
        if any(f in marks for f in funcs):
            return name
    return "starting" if not funcs else f"other ({funcs[0]})"


@dataclass
class Child:
    """One run of ``aerialseg ARGS`` in a child process."""

    args: list
    dumps: Path
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.dumps.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(self.dumps), *map(str, self.args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **ONE_THREAD, "PYTHONUNBUFFERED": "1", **self.env},
        )
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def where(self, timeout: float = 30.0) -> str:
        """The phase the child is in now (from its stack; '' if it has exited)."""
        while not self.dumps.read_text().startswith("ready"):  # SIGUSR1 would kill it before
            if not self.alive():
                return ""
            time.sleep(0.005)
        size = self.dumps.stat().st_size
        if not _to_main_thread(self.proc.pid, signal.SIGUSR1):
            return ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            text = self.dumps.read_text()[size:]
            if "END" in text:  # the dump is complete
                return phase_of(text)
            time.sleep(0.0005)
        return ""

    def kill(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def finish(self, timeout: float = 600) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)


def _to_main_thread(pid: int, sig: int) -> bool:
    """Signal the child's main thread (the one running Python), not whichever thread the
    kernel picks for a process-wide signal: faulthandler's dump from a native worker thread
    (OpenMP) can crash the process. False if the child is gone."""
    import ctypes

    if _TGKILL is None:  # another architecture: the process-wide signal
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(_TGKILL, pid, pid, sig) == 0


def wait_until(cond: Callable[[], object], child: Child, timeout: float = 300, step=0.01):
    """Poll ``cond()`` until it is true (returns it) or the child exits (returns None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        if not child.alive():
            return cond() or None
        time.sleep(step)
    raise TimeoutError("the child neither did it nor exited")


def temp_files(folder: Path, prefixes: tuple[str, ...] = ("",)) -> list[str]:
    """Hidden temporary files (``.NAME.xxxxxxxx.SUF``) of atomic writes in ``folder``."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [n for n in names if n.startswith(".") and any(n[1:].startswith(p) for p in prefixes)]
