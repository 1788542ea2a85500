"""An ONNX model for the Deepness QGIS plugin (``export --format onnx --target deepness``).

Deepness (PUTvision/qgis-plugin-deepness) runs ONNX models on a QGIS raster layer. What its
model loader and segmentation path expect, read from its ``processing/models/model_base.py``,
``segmentor.py``, ``preprocessing_utils.py`` and ``map_processor_segmentation.py``:

- one input, NCHW, a **fixed square** tile: the tile size is read from the input's last
  dimension and its spin box is then disabled; a named (free) batch axis lets the user choose
  the batch size;
- the tiles arrive as uint8 RGB divided by 255 (0-1), then ``(x - mean) / std`` with
  ``standardization_mean``/``standardization_std`` from the metadata (default 0 and 1);
- a 4-D output (N, C, H, W) with C > 1 is taken as per-class probabilities: values under
  ``seg_thresh`` are zeroed, then the argmax is the class (so the output must be softmax
  probabilities, not logits, for the threshold to mean anything);
- metadata values are JSON: ``model_type`` "Segmentor", ``class_names`` a dict with keys
  "0".."N-1", ``resolution`` in cm/px (the layer is resampled to it), ``tile_size`` in pixels,
  ``tiles_overlap`` in per cent (each tile's outer half-overlap is cut off), ``seg_thresh``
  and ``seg_small_segment`` (a median filter size, 0 off).

The scale by 255 is **inside the graph**, not in the standardization metadata: our networks
take 0-255 RGB and normalise themselves (``Normalize``: mean/std on the 0-255 scale, or
per-window min-max, which no fixed mean/std can express), so one multiplication in front
keeps that normalisation exactly as trained whatever the model's kind, and the file stays
correct for any tool that feeds 0-1 RGB without reading Deepness's metadata. The
standardization keys are written anyway, as the identity, to say so.

Deepness pins ``onnxruntime-gpu>=1.12.1,<=1.17.0`` (its ``python_requirements``): 1.12 reads
opset <= 17 and IR version <= 8, so those are what this file is written with.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from ..classes import ClassTable
from ..errors import AerialSegError
from .base import BaseModel
from .export import OPSET as EXPORT_OPSET
from .export import add_metadata, inference_copy, onnx_proto

OPSET, IR_VERSION = 17, 8  # onnxruntime 1.12.1, the oldest Deepness installs, reads these
TILE_SIZE = 512  # px; a multiple of 32 (no padding inside), context enough for a U-Net
# per cent: Deepness crops half the overlap off each tile side (no blending), so 25 % drops the
# outer 64 px of a 512 tile, where a U-Net that sees no context beyond the tile is least sure
TILES_OVERLAP = 25
OUTPUT = "probabilities"
IO_NOTE = (
    "input 'image': float32 (N, 3, {t}, {t}) RGB on the 0-1 scale (Deepness's /255); "
    "output 'probabilities': float32 (N, C, {t}, {t}), softmax over C"
)


class DeepnessNet(nn.Module):
    """Deepness's 0-1 input back to the 0-255 our network normalises from; softmax out."""

    def __init__(self, net: BaseModel):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x * 255.0), dim=1)


def resolution_cm(meta: dict) -> float:
    """The training ground sampling distance (``train_config.gsd``, metres) in cm/px: Deepness
    resamples the layer to it, so the model sees the scale it learnt."""
    gsd = (meta.get("train_config") or {}).get("gsd")
    if not gsd:
        raise AerialSegError(
            "the model records no training resolution (train_config.gsd); Deepness needs one"
        )
    return round(float(gsd) * 100, 4)


def deepness_metadata(classes: ClassTable, meta: dict, tile_size: int) -> dict[str, str]:
    """The metadata keys Deepness's loader reads (JSON values), plus our own name, class
    table (with colours) and ``target``, which tells aerialseg's ONNX runner to refuse it."""
    names = {str(i): name for i, name in enumerate(classes.names)}
    deepness = {
        "model_type": "Segmentor",
        "class_names": names,
        "resolution": resolution_cm(meta),
        "tile_size": tile_size,
        "tiles_overlap": TILES_OVERLAP,
        "seg_thresh": 0.0,  # plain argmax, as `aerialseg segment` labels
        "seg_small_segment": 0,  # no median filter, as `aerialseg segment`
        "standardization_mean": [0.0, 0.0, 0.0],  # identity: the graph scales and normalises
        "standardization_std": [1.0, 1.0, 1.0],
    }
    props = {key: json.dumps(value) for key, value in deepness.items()}
    props.update(
        name=str(meta.get("name", "aerialseg")),
        classes=json.dumps(classes.to_dict()),
        target="deepness",
        io=IO_NOTE.format(t=tile_size),
    )
    return props


def deepness_onnx_bytes(
    model: BaseModel, classes: ClassTable, meta: dict, tile_size: int = TILE_SIZE
) -> bytes:
    """The serialised model: fixed ``tile_size`` square input, free batch, opset 17, IR 8."""
    if tile_size < 64 or tile_size % 32:
        raise AerialSegError(f"tile size must be a multiple of 32 and >= 64, not {tile_size}")
    resolution_cm(meta)  # refuse before the slow export
    net = DeepnessNet(inference_copy(model)).eval()
    x = torch.rand(2, 3, tile_size, tile_size)
    proto = _downgrade(onnx_proto(net, x, {0: torch.export.Dim.DYNAMIC}, EXPORT_OPSET, OUTPUT))
    add_metadata(proto, deepness_metadata(classes, meta, tile_size), _doc(tile_size))
    return proto.SerializeToString()


def _downgrade(proto):
    """The exported graph (opset 18) as opset 17, IR 8. Converted after the export, not by
    asking torch for opset 17: its converter runs before the fixed shape has removed the
    padding (``Pad`` has no 18 -> 17 adapter); the finished graph holds only ops that convert."""
    import onnx
    from onnx import version_converter

    try:
        proto = version_converter.convert_version(proto, OPSET)
    except RuntimeError as e:
        first = str(e).splitlines()[-1] if str(e) else type(e).__name__
        raise AerialSegError(f"cannot write opset {OPSET} for Deepness ({first})") from None
    proto.ir_version = IR_VERSION  # opset 17's IR; no newer IR features are used
    onnx.checker.check_model(proto)
    return proto


def _doc(tile_size: int) -> str:
    return f"aerialseg segmentation model for Deepness; {IO_NOTE.format(t=tile_size)}"
