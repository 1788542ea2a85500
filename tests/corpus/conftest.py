"""What the corpus tests share: the CLI in-process, the checks of its one-line errors, tiny
models of both tasks, and the places outputs can fail (a full disk, a read-only folder)."""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from aerialseg.cli import main

from ..helpers import tiny_checkpoint


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("aerialseg: error: ")]


def run_cli(*args) -> Result:
    """``aerialseg ARGS`` in this process (a subprocess costs a second of imports): its exit
    status and what it printed. argparse's own exits (status 2) are caught too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


def refused(r: Result, names, says: str, code: int = 2) -> None:
    """The command stopped with ``code`` and exactly one line, naming the file (each of
    ``names``, path fragments) and the problem; no traceback."""
    assert r.code == code, (r.code, r.err, r.out)
    assert "Traceback" not in r.err + r.out, r.err
    lines = [line for line in r.err.splitlines() if line.strip()]
    # ours ("aerialseg: error: ...") or argparse's ("aerialseg train: error: ...")
    assert len(lines) == 1 and lines[0].startswith("aerialseg") and " error: " in lines[0], r.err
    for name in [names] if isinstance(names, str) else names:
        assert name in lines[0], (name, lines[0])
    assert says.lower() in lines[0].lower(), (says, lines[0])


def skipped(r: Result, name: str, says: str) -> None:
    """A command of many files reported this one in one line and went on (exit status 1)."""
    assert r.code == 1, (r.code, r.err, r.out)
    assert "Traceback" not in r.err + r.out, r.err
    lines = [line for line in r.error_lines if name in line]
    assert len(lines) == 1, (name, r.err)
    assert says.lower() in lines[0].lower(), (says, lines[0])


def leftovers(folder: Path) -> list[str]:
    """Every file under ``folder`` (temporary ones included), relative to it."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


@pytest.fixture(autouse=True, scope="package")  # undone after tests/corpus
def permissions_as_for_a_user():
    """Tests run as root here, and root reads a file of mode 000 anyway. So that the
    'unreadable' kinds test what a user meets, opening a file without read permission raises
    PermissionError as the kernel does for anyone else (Pillow and our readers open files
    with ``builtins.open``). Without root the kernel does it itself and this does nothing."""
    if os.geteuid() != 0:
        yield
        return
    real_open = builtins.open

    def open_(file, mode="r", *args, **kw):
        if isinstance(file, (str, bytes, os.PathLike)) and "r" in mode:
            try:
                st = os.stat(file)
            except OSError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode) and not st.st_mode & 0o444:
                raise PermissionError(13, "Permission denied", os.fsdecode(file))
        return real_open(file, mode, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", open_)
        yield


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    return r.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 48 KiB tmpfs: room for a few small files, then ENOSPC. Needs root (or
    CAP_SYS_ADMIN) to mount; skipped otherwise."""
    disk = tmp_path / "disk"
    if not _mount(disk, "size=48k,mode=0777"):
        pytest.skip("cannot mount a small tmpfs here (needs root): no full disk to test on")
    try:
        yield disk
    finally:
        _umount(disk)


@pytest.fixture
def full_disk(small_disk):
    """An empty folder on a disk that is full: every write fails with ENOSPC."""
    folder = small_disk / "out"
    folder.mkdir()
    fill(small_disk)
    return folder


def fill(disk: Path) -> None:
    """Write a file into ``disk`` until it is full."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 1024):
            pass
    except OSError:  # ENOSPC: full
        pass
    finally:
        os.close(fd)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nothing can be written into, not even by root: a read-only tmpfs (or, for
    a user, a folder of mode 555)."""
    folder = tmp_path / "readonly"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not _mount(folder, "ro,size=16k"):
        pytest.skip("cannot mount a read-only tmpfs here: no unwritable folder for root")
    try:
        yield folder
    finally:
        _umount(folder)


@pytest.fixture(scope="session")
def classifier(tmp_path_factory) -> Path:
    """A tiny untrained classifier checkpoint (4 classes of 32 x 32 images) with the dataset
    description ``classify evaluate`` needs (pointing at a CIFAR folder made beside it)."""
    from aerialseg.data.imageset import class_table
    from aerialseg.models import create_model
    from aerialseg.models.checkpoint import save_checkpoint

    from ..helpers import write_cifar

    folder = tmp_path_factory.mktemp("classifier")
    data = write_cifar(folder / "cifar")
    model = create_model(
        "cnn-islr", num_classes=4, input_size=32, base_filters=4, dense=8,
        normalization={"kind": "meanstd", "mean": [0.0] * 3, "std": [255.0] * 3},
    )  # fmt: skip
    ds = {"kind": "cifar100", "root": str(data), "size": 32, "label": "fine"}
    ds.update(val_fraction=0.2, seed=0)
    return save_checkpoint(
        folder / "clf.safetensors",
        model,
        class_table([f"fine{i}" for i in range(4)]),
        task="classification",
        dataset=ds,
    )


@pytest.fixture(scope="session")
def segmenter(tmp_path_factory) -> Path:
    """A tiny untrained segmentation checkpoint."""
    return tiny_checkpoint(tmp_path_factory.mktemp("segmenter") / "seg.safetensors")
