"""Self-describing, safe checkpoints: a safetensors file whose header holds our JSON.

safetensors stores raw tensors and a string-to-string header, so loading one runs no code,
unlike a pickled ``torch.save`` file. Under the header key ``aerialseg`` we keep everything
needed to rebuild and use the model: architecture config (including the input normalisation),
class table, training config, metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..classes import ClassTable
from ..errors import AerialSegError
from ..io.files import atomic_path
from .base import BaseModel
from .registry import create_model

FORMAT = "aerialseg/1"
KEY = "aerialseg"


def save_checkpoint(
    path: str | Path, model: BaseModel, classes: ClassTable, half: bool = False, **extra
) -> Path:
    """Write weights + metadata atomically. ``extra`` (JSON-able) lands in the metadata.
    ``half`` stores floating-point weights as float16 (half the file; loading casts them back
    to the model's float32). Batch-norm running statistics stay float32: a few kilobytes,
    and small variances are where float16's precision is worst."""
    meta = {"format": FORMAT, "model": model.config, "classes": classes.to_dict(), **extra}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        tensors = {
            k: v.half() if v.is_floating_point() and ".running_" not in k else v
            for k, v in tensors.items()
        }
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={KEY: json.dumps(meta)})
        except SafetensorError as e:  # a full disk, as safetensors reports it
            raise AerialSegError(f"{path}: cannot write ({_first_line(e)})") from None
    return Path(path)


def update_metadata(path: str | Path, **extra) -> Path:
    """Add or replace metadata keys of a checkpoint, its tensors copied as they are stored
    (same dtypes, same bytes: a float16 file stays float16), atomically. For what is learnt
    about a model after its weights, such as :mod:`aerialseg.inference.familiarity`'s
    feature reference."""
    meta = {**read_metadata(path), **extra}
    tensors = load_file(str(path))
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={KEY: json.dumps(meta)})
        except SafetensorError as e:
            raise AerialSegError(f"{path}: cannot write ({_first_line(e)})") from None
    return Path(path)


def _first_line(e: Exception) -> str:
    return next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)


def read_metadata(path: str | Path) -> dict:
    """The checkpoint's metadata without loading the weights."""
    path = Path(path)
    if path.is_dir():
        raise AerialSegError(f"{path}: a folder, not a model file")
    if not path.is_file():
        raise AerialSegError(f"{path}: no such model file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise AerialSegError(
            f"{path}: not an aerialseg model (expected a .safetensors file written by "
            f"aerialseg: {str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if KEY not in header:
        raise AerialSegError(f"{path}: a safetensors file, but not an aerialseg model")
    try:
        meta = json.loads(header[KEY])
    except json.JSONDecodeError:
        raise AerialSegError(f"{path}: aerialseg metadata is corrupt") from None
    if meta.get("format") != FORMAT:
        raise AerialSegError(f"{path}: unsupported checkpoint format {meta.get('format')!r}")
    return meta


def load_checkpoint(
    path: str | Path, task: str = "segmentation"
) -> tuple[BaseModel, ClassTable, dict]:
    """Rebuild the model from the checkpoint alone. Returns (model in eval mode, classes, meta).

    ``task`` is what the caller can use; a checkpoint of the other task is refused with a
    clear error (checkpoints without a ``task`` key are segmentation models).
    """
    meta = read_metadata(path)
    found = meta.get("task", "segmentation")
    if found != task:
        hint = "aerialseg classify" if found == "classification" else "aerialseg segment/evaluate"
        raise AerialSegError(f"{path}: a {found} model, not a {task} model (use it with {hint})")
    cfg = dict(meta["model"])
    model = create_model(cfg.pop("name"), **cfg)
    try:
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, SafetensorError) as e:
        raise AerialSegError(
            f"{path}: weights do not fit the stored architecture ({_first_line(e)})"
        ) from None
    return model.eval(), ClassTable.from_dict(meta["classes"]), meta


def load_train_state(path: str | Path) -> dict:
    """Optimizer and progress for ``--resume``: tensors and plain values only, so
    ``weights_only=True`` loads it without running pickle code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - anything unreadable is a bad file
        raise AerialSegError(f"{path}: cannot load training state ({e})") from None


def save_train_state(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # a full disk, as torch's zip writer reports it
            raise AerialSegError(f"{path}: cannot write ({_first_line(e)})") from None
