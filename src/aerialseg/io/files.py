"""Files written atomically (temp file beside the target, then rename) and mapping files read
with errors that name the file."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from ..errors import AerialSegError


@contextmanager
def atomic_path(dest: str | Path):
    """Yield a temporary path beside ``dest``; it replaces ``dest`` only if the block succeeds.

    The temporary file is created with mode 0666 so the kernel applies the process umask, as
    for any file ``open()`` creates (``mkstemp`` would make it 0600, and reading the umask
    means changing it, which other threads would see).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}{dest.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    else:
        raise AerialSegError(f"{dest.parent}: cannot create a temporary file")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(dest: str | Path, write: Callable[[Path], object]) -> Path:
    with atomic_path(dest) as tmp:
        write(tmp)
    return Path(dest)


def write_text(dest: str | Path, text: str) -> Path:
    return write_atomic(dest, lambda p: p.write_text(text))


def read_mapping(path: str | Path, what: str = "config") -> dict:
    """A JSON or YAML file (by suffix) that must hold a mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise AerialSegError(f"{path}: cannot read {what} ({e.strerror})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise AerialSegError(f"{path}: cannot parse {what}: {e}") from None
    if not isinstance(d, dict):
        raise AerialSegError(f"{path}: {what} must be a mapping of keys to values")
    return d
