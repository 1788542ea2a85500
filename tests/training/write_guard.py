"""Installed as ``sitecustomize`` in the processes test_distributed.py starts: records every
attempt to create, write, rename or remove a file under $GUARD_RUN, per process, in
$GUARD_LOG/<rank>.txt (``launcher`` for the process that started torchrun)."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

RUN = os.path.realpath(os.environ["GUARD_RUN"])
LOG = Path(os.environ["GUARD_LOG"])
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
seen: list[str] = []


def _inside(path) -> bool:
    try:
        p = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return p == RUN or p.startswith(RUN + os.sep)


def _hook(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        if writes and _inside(args[0]):
            seen.append(f"open {os.fsdecode(args[0])}")
    elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir", "os.rmdir"):
        if any(_inside(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
            seen.append(f"{event} {os.fsdecode(args[0])}")


def _report() -> None:
    name = os.environ.get("RANK", f"launcher-{os.getpid()}")
    (LOG / f"{name}.txt").write_text("".join(f"{line}\n" for line in seen))


LOG.mkdir(parents=True, exist_ok=True)
sys.addaudithook(_hook)
atexit.register(_report)
