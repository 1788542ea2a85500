"""Helpers shared by the tests: tiny synthetic scenes made in code, the CLI in a subprocess
or in this process, a tiny checkpoint, a tiny CIFAR-100 folder. Fixtures built on them are in
conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from aerialseg.classes import DUBAI

# A distinct photo colour per class, so that a model can learn the synthetic task quickly.
PHOTO_COLORS = np.array(
    [[200, 60, 60], [190, 170, 120], [90, 90, 90], [40, 140, 40], [30, 60, 170], [240, 240, 240]],
    dtype=np.uint8,
)


def make_scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random layout of class rectangles: (photo RGB, labels)."""
    rng = np.random.default_rng(seed)
    labels = np.full((h, w), 1, dtype=np.uint8)
    for _ in range(8):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        labels[y : y + rng.integers(8, h // 2), x : x + rng.integers(8, w // 2)] = rng.integers(6)
    noise = rng.integers(-12, 13, size=(h, w, 3))
    photo = np.clip(PHOTO_COLORS[labels].astype(int) + noise, 0, 255).astype(np.uint8)
    return photo, labels


def write_pair(folder: Path, stem: str, photo: np.ndarray, labels: np.ndarray, palette=False):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(folder / "images" / f"{stem}.jpg", quality=95)
    mask = Image.fromarray(DUBAI.colorize(labels))
    if palette:
        mask = mask.quantize(palette=_palette_image(), dither=Image.Dither.NONE)
    mask.save(folder / "masks" / f"{stem}.png")


def _palette_image():
    pal = Image.new("P", (1, 1))
    flat = [v for c in DUBAI.colors for v in c] + [0, 0, 0]
    pal.putpalette(flat + [0] * (768 - len(flat)))
    return pal


def run_aerialseg(*args, cwd=None, env: dict | None = None, timeout: float = 600):
    """The ``aerialseg`` command in a child process, as a user runs it (``env`` is added to
    this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "aerialseg", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        timeout=timeout,
    )


def aerialseg_here(*args, cwd=None, env: dict | None = None, timeout: float = 600):
    """``aerialseg ARGS`` in this process, as :func:`run_aerialseg` reports a child's run (a
    CompletedProcess: exit status, stdout, stderr), without the child's second or two of
    imports (``python -m aerialseg`` is ``sys.exit(main())``). What a run changes in this
    process (torch's, NumPy's and Python's RNGs, torch's threads, the environment, the
    SIGINT handler) is put back. With ``cwd`` or ``env`` it is a child process after all."""
    if cwd is not None or env is not None:
        return run_aerialseg(*args, cwd=cwd, env=env, timeout=timeout)
    import contextlib
    import io
    import random
    import signal

    import torch

    from aerialseg.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    environ, threads = dict(os.environ), torch.get_num_threads()
    sigint, state, np_state = (
        signal.getsignal(signal.SIGINT),
        random.getstate(),
        np.random.get_state(),
    )
    try:
        with torch.random.fork_rng(), contextlib.redirect_stdout(out):
            with contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as e:  # argparse's own exits
                    code = e.code if isinstance(e.code, int) else 1 if e.code else 0
    finally:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update({k: v for k, v in environ.items() if os.environ.get(k) != v})
        torch.set_num_threads(threads)
        signal.signal(signal.SIGINT, sigint)
        random.setstate(state)
        np.random.set_state(np_state)
    return subprocess.CompletedProcess(argv, code or 0, out.getvalue(), err.getvalue())


def tiny_checkpoint(path: Path, arch: str = "unet", seed: int | None = None, **kwargs) -> Path:
    """An untrained segmentation checkpoint of a 4-filter network: loads and runs in ms.
    ``seed``: always the same network, whatever earlier tests drew from torch's global RNG
    (which it leaves as it was)."""
    import torch

    from aerialseg.models import create_model
    from aerialseg.models.checkpoint import save_checkpoint

    with torch.random.fork_rng(enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = create_model(arch, base_filters=4, **kwargs)
    return save_checkpoint(path, model, DUBAI)


def write_cifar(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """A tiny ``cifar-100-python/`` in the real layout: dicts with bytes keys, ``data`` an
    (N, 3072) uint8 array of R, G, B planes, labels as lists of ints. Class c's images are
    tinted with a colour of their own so a CNN can learn them in a few steps."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = [f"fine{i}".encode() for i in range(4)]
    tints = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220], [220, 220, 30]])
    for name, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 4, n)
        hwc = np.clip(tints[labels][:, None, None] + rng.integers(-20, 21, (n, 32, 32, 3)), 0, 255)
        d = {
            b"filenames": [f"img_{name}_{i}.png".encode() for i in range(n)],
            b"batch_label": f"{name} batch".encode(),
            b"fine_labels": labels.tolist(),
            b"coarse_labels": (labels // 2).tolist(),
            b"data": hwc.astype(np.uint8).transpose(0, 3, 1, 2).reshape(n, 3072),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    meta = {b"fine_label_names": fine, b"coarse_label_names": [b"c0", b"c1"]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root
