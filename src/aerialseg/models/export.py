"""A segmentation model as an ONNX or TorchScript file, for runtimes other than PyTorch.

The exported network is what :class:`~aerialseg.inference.segmenter.Segmenter` runs: batch norm
folded into the convolutions, eval mode, fp32, on the CPU. Its input is ``image``, float32
(N, 3, H, W) RGB on the 0-255 scale (the normalisation is inside); its output ``logits``,
float32 (N, C, H, W). N, H and W are free: the model pads H and W to a multiple of 16 (32 for
unet-effl0) by reflection and crops the result back, in the exported graph too, where the
reflection needs sides of at least 32 (``segment`` pads smaller images itself).

Both files carry the checkpoint's metadata (class table, normalisation, name, training
config): ONNX in ``metadata_props`` (key ``aerialseg``, JSON, plus ``name``, ``classes`` and
``normalization`` on their own), TorchScript as the extra file ``aerialseg.json``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from pathlib import Path

import torch

from ..classes import ClassTable
from ..errors import AerialSegError
from ..io.files import atomic_path
from .base import BaseModel, fold_batchnorm

FORMATS = ("onnx", "torchscript")
# The opset onnxruntime's CPU provider runs fully (ORT >= 1.14) and torch's exporter writes.
OPSET = 18
# Traced with odd sides, so that the graph holds the padding to a multiple of 16 or 32.
EXAMPLE_SHAPE = (1, 3, 97, 131)
INPUT, OUTPUT = "image", "logits"
IO_NOTE = (
    "input 'image': float32 (N, 3, H, W) RGB on the 0-255 scale, H and W >= 32; "
    "output 'logits': float32 (N, C, H, W)"
)


def inference_copy(model: BaseModel) -> BaseModel:
    """The network as it is exported: a CPU fp32 copy in eval mode, batch norm folded."""
    return fold_batchnorm(copy.deepcopy(model).cpu().float().eval())


def export_metadata(model: BaseModel, classes: ClassTable, meta: dict) -> dict[str, str]:
    """String properties stored in the exported file."""
    info = {**meta, "model": model.config, "classes": classes.to_dict()}
    info.setdefault("name", model.config["name"])
    return {
        "aerialseg": json.dumps(info),
        "name": str(info["name"]),
        "classes": json.dumps(classes.to_dict()),
        "normalization": json.dumps(model.normalize.config()),
        "io": IO_NOTE,
    }


@contextlib.contextmanager
def _quiet():
    """torch.onnx's progress lines, warnings and log messages are not the user's business."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def onnx_proto(net: torch.nn.Module, example: torch.Tensor, dynamic: dict, opset: int, output: str):
    """``net`` traced on ``example`` into an ONNX ModelProto (``dynamic``: the input's free
    axes, for torch.export's ``dynamic_shapes``); shared by every ONNX flavour we write."""
    try:
        import onnx  # noqa: F401 - torch.onnx needs it (and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        raise AerialSegError(
            "ONNX export needs the onnx extra: pip install 'aerialseg[onnx]'"
        ) from None
    with _quiet():
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT],
            output_names=[output],
            dynamic_shapes={"x": dynamic},
            verbose=False,
        )
    return program.model_proto


def add_metadata(proto, props: dict[str, str], doc: str) -> None:
    for key, value in props.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "aerialseg"
    proto.doc_string = doc


def onnx_bytes(model: BaseModel, classes: ClassTable, meta: dict, opset: int = OPSET) -> bytes:
    """The serialised ONNX model (dynamic batch, height and width)."""
    dim = torch.export.Dim.DYNAMIC
    x = torch.rand(EXAMPLE_SHAPE) * 255
    proto = onnx_proto(inference_copy(model), x, {0: dim, 2: dim, 3: dim}, opset, OUTPUT)
    add_metadata(
        proto, export_metadata(model, classes, meta), f"aerialseg segmentation model; {IO_NOTE}"
    )
    return proto.SerializeToString()


def save_onnx(path, model: BaseModel, classes: ClassTable, meta: dict, opset: int = OPSET):
    return write_bytes(path, onnx_bytes(model, classes, meta, opset))


def write_bytes(path, data: bytes) -> Path:
    """``data`` written whole under ``path`` or not at all (an interrupted export leaves no
    truncated model)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def save_torchscript(path, model: BaseModel, classes: ClassTable, meta: dict) -> Path:
    """A traced TorchScript module (``torch.jit.load`` runs it without aerialseg). TorchScript
    is deprecated upstream; ONNX is the export to prefer."""
    net = inference_copy(model)
    with _quiet():
        traced = torch.jit.trace(net, torch.rand(EXAMPLE_SHAPE) * 255)
    extra = {"aerialseg.json": export_metadata(model, classes, meta)["aerialseg"]}
    with atomic_path(path) as tmp, _quiet():
        torch.jit.save(traced, str(tmp), _extra_files=extra)
    return Path(path)


def load_torchscript(path) -> tuple[torch.nn.Module, dict]:
    """(scripted module, metadata) of a file written by :func:`save_torchscript`."""
    extra = {"aerialseg.json": ""}
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra["aerialseg.json"] or "{}")
