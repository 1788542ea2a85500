"""CIFAR-100 in its python format, read without letting the pickle run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..errors import AerialSegError
from .imageset import ImageSet, class_table


class _CifarUnpickler(pickle.Unpickler):
    """Only what the CIFAR files contain: containers, bytes and uint8 numpy arrays. Any other
    global (os.system, eval, ...) is refused, so a crafted file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol 2
        *((m, n) for m in ("builtins", "__builtin__") for n in ("dict", "list", "bytes", "str")),
        *((m, "int") for m in ("builtins", "__builtin__")),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    if not path.is_file():
        raise AerialSegError(f"{path}: no such file (expected cifar-100-python/{path.name})")
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise AerialSegError(f"{path}: not a CIFAR pickle file ({e})") from None
    if not isinstance(d, dict):
        raise AerialSegError(f"{path}: not a CIFAR pickle file (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def cifar_root(root: str | Path) -> Path:
    root = Path(root)
    return root / "cifar-100-python" if (root / "cifar-100-python").is_dir() else root


def read_cifar100(root: str | Path, split: str = "train", label: str = "fine") -> ImageSet:
    """One file (``train`` or ``test``) of ``cifar-100-python/``, with ``fine`` (100) or
    ``coarse`` (20) labels."""
    root = cifar_root(root)
    if label not in ("fine", "coarse"):
        raise AerialSegError(f"unknown CIFAR label set {label!r}: use fine or coarse")
    meta = _read_pickle(root / "meta")
    d = _read_pickle(root / split)
    try:
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in meta[f"{label}_label_names"]
        ]
        data, labels = d["data"], np.asarray(d[f"{label}_labels"], dtype=np.int64)
        files = d.get("filenames") or [f"{i}" for i in range(len(labels))]
    except KeyError as e:
        raise AerialSegError(f"{root}: CIFAR file lacks {e}") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise AerialSegError(f"{root / split}: 'data' is not an (N, 3072) uint8 array")
    if data.shape != (len(labels), 3072) or labels.min() < 0 or labels.max() >= len(names):
        raise AerialSegError(f"{root / split}: data, labels and class names do not fit together")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are R, G, B planes
    ids = [f"{split}/{f.decode() if isinstance(f, bytes) else f}" for f in files]
    return ImageSet(np.ascontiguousarray(images), labels, class_table(names), ids)
