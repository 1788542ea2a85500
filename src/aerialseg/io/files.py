"""Files written atomically (temp file beside the target, then rename) and mapping files read
with errors that name the file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import AerialSegError


@contextmanager
def atomic_path(dest: str | Path):
    """Yield a temporary path beside ``dest``; it replaces ``dest`` only if the block succeeds.

    The temporary file is created with mode 0666 so the kernel applies the process umask, as
    for any file ``open()`` creates (``mkstemp`` would make it 0600, and reading the umask
    means changing it, which other threads would see). Its name carries the writer's process
    id: temporary files of ``dest`` left by a process that was killed are removed here.
    """
    dest = Path(dest)
    make_folder(dest.parent)
    remove_stale_temps(dest.parent, dest.name)
    for _ in range(100):
        tmp = dest.parent / f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}{dest.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise AerialSegError(f"{dest}: cannot write ({_reason(e)})") from None
    else:
        raise AerialSegError(f"{dest.parent}: cannot create a temporary file")
    try:
        try:
            yield tmp
            if dest.is_dir():
                raise AerialSegError(f"{dest}: is a folder, cannot write a file there")
            os.replace(tmp, dest)
        except OSError as e:  # a full disk, a vanished folder: the file's problem, in one line
            raise AerialSegError(f"{dest}: cannot write ({_reason(e)})") from None
    finally:
        with suppress(OSError):
            tmp.unlink()


def make_folder(folder: str | Path) -> Path:
    """``folder`` and its parents, or one clear line saying why it cannot be made."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AerialSegError(f"{folder}: exists and is not a folder") from None
    except OSError as e:
        raise AerialSegError(f"{folder}: cannot create the folder ({_reason(e)})") from None
    return folder


def check_writable_folder(folder: str | Path, what: str = "--out") -> Path:
    """Refuse an output folder that cannot be one (an existing file, an unwritable place)
    before any work is done; the folder itself is only created when something is written."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir through it fails
            raise AerialSegError(f"{what} {folder}: {probe} is a broken link")
        probe = probe.parent
    if not probe.is_dir():
        raise AerialSegError(f"{what} {folder}: {probe} exists and is not a folder")
    try:  # a real write: permissions alone do not tell (root, read-only mounts)
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as e:
        raise AerialSegError(f"{what} {folder}: cannot write in {probe} ({_reason(e)})") from None
    return folder


def _parse_error(e: Exception) -> str:
    """A parser's complaint in one line: YAML's spans several, with a caret picture."""
    mark = getattr(e, "problem_mark", None)
    if mark is not None:
        problem = getattr(e, "problem", None) or e
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _reason(e: OSError) -> str:
    """The OS's words for ``e`` (e.g. 'No space left on device'), without the path, which
    the message already names."""
    return e.strerror or str(e) or type(e).__name__


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}(\.[^.]*)?$")


def remove_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` in ``folder`` (those of ``name``
    only, if given) whose writer is no longer running: what a kill -9 mid-write leaves. A
    live process's are left alone, so writers sharing a folder never disturb each other.
    (Process ids are this machine's: writers on other hosts of a network share are not
    told apart.)"""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for n in names:
        target, pids = n, []
        while m := _TEMP.match(target):  # a temporary file of a temporary file, and so on
            target, pids = m["name"], [*pids, int(m["pid"])]
        if not pids or (name is not None and target != name) or all(map(_running, pids)):
            continue
        with suppress(OSError):
            os.unlink(os.path.join(folder, n))
            removed.append(Path(folder) / n)
    return removed


def _running(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would send Ctrl-C there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


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
        raise AerialSegError(f"{path}: cannot read {what} ({_reason(e)})") from None
    except UnicodeDecodeError as e:
        raise AerialSegError(f"{path}: cannot read {what} (not UTF-8 text: {e.reason})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise AerialSegError(f"{path}: cannot parse {what}: {_parse_error(e)}") from None
    if not isinstance(d, dict):
        raise AerialSegError(f"{path}: {what} must be a mapping of keys to values")
    return d


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): names a file whatever it is called or wherever it is."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
