"""Exported models compute what the PyTorch model computes: ONNX through onnxruntime and
TorchScript through torch.jit.load, on dataset images of odd sizes (the model pads them to a
multiple of 16 inside the exported graph too), with the class table and normalisation in the
file's metadata and batch norm folded away."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aerialseg.inference.segmenter import DEFAULT_MODEL
from aerialseg.io.images import read_image
from aerialseg.models.checkpoint import load_checkpoint
from aerialseg.models.export import inference_copy, load_torchscript, save_torchscript

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

# (image, crop): an odd-sized whole dataset image and odd crops of others
ODD = [
    ("Tile 2/images/image_part_008.jpg", None),  # 510 x 544
    ("Tile 4/images/image_part_006.jpg", (251, 333)),
    ("Tile 7/images/image_part_003.jpg", (333, 517)),
]


@pytest.fixture(scope="module")
def bundled():
    return load_checkpoint(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def onnx_file(onnx_default):
    return onnx_default[0]  # `aerialseg export` of the bundled model


def odd_images(root):
    for name, crop in ODD:
        rgb = read_image(root / name)
        yield name, rgb[: crop[0], : crop[1]] if crop else rgb


@pytest.mark.slow  # exports the bundled model, ~11 s: keeps `make test` under 5 min
def test_onnx_logits_equal_pytorch_on_odd_sized_dataset_images(bundled, onnx_file, real_data):
    from aerialseg.inference.onnx_model import OnnxModel

    net, onnx_net = inference_copy(bundled[0]), OnnxModel(onnx_file)
    worst = 0.0
    for name, rgb in odd_images(real_data):
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float()
        assert x.shape[-1] % 16 or x.shape[-2] % 16, name  # really odd
        with torch.inference_mode():
            expected = net(x)
        got = onnx_net(x)
        assert got.shape == expected.shape
        diff = float((got - expected).abs().max())
        worst = max(worst, diff)
        same = float((got.argmax(1) == expected.argmax(1)).float().mean())
        print(f"{name} {rgb.shape[1]}x{rgb.shape[0]}: max |logit diff| {diff:.2e}, "
              f"labels equal {same:.5%}")  # fmt: skip
        assert same >= 0.999, name
    assert worst < 1e-3  # float32 both sides, different kernels: ~1e-5 is typical


@pytest.mark.slow  # exports the bundled model, ~11 s: keeps `make test` under 5 min
def test_onnx_segmenter_blends_windows_like_pytorch(onnx_file, real_data):
    from aerialseg.inference.segmenter import load_segmenter
    from aerialseg.inference.tiling import Tiling

    # windows of 256: the blended-window path, not one whole-image pass
    tiling = Tiling(window=256, batch_size=2)
    torch_seg = load_segmenter(precision="fp32", tiling=tiling, device="cpu")
    onnx_seg = load_segmenter(onnx_file, tiling=tiling)
    assert onnx_seg.name == torch_seg.name == "default"
    assert onnx_seg.classes.names == torch_seg.classes.names
    name, rgb = list(odd_images(real_data))[-1]
    a, b = torch_seg.predict_proba(rgb), onnx_seg.predict_proba(rgb)
    assert float(np.abs(a - b).max()) < 1e-4
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.999


@pytest.mark.slow  # exports the bundled model, ~11 s: keeps `make test` under 5 min
def test_onnx_metadata_and_folded_batch_norm(bundled, onnx_file):
    import onnx

    model, classes, _ = bundled
    proto = onnx.load(str(onnx_file))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == classes.to_dict()
    assert json.loads(props["normalization"]) == model.normalize.config()
    assert props["name"] == "default"
    meta = json.loads(props["aerialseg"])
    assert meta["model"] == model.config and "train_config" in meta
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param[:1] for d in dims] == ["s", 3, "s", "s"]  # N, H, W free


def test_torchscript_export_runs_without_aerialseg_code(tiny_model, tmp_path):
    model, classes, meta = load_checkpoint(tiny_model)
    path = save_torchscript(tmp_path / "tiny.pt", model, classes, meta)
    module, stored = load_torchscript(path)
    assert stored["classes"] == classes.to_dict()
    net = inference_copy(model)
    for h, w in ((75, 113), (64, 64), (200, 33)):
        x = torch.rand(2, 3, h, w) * 255
        with torch.inference_mode():
            torch.testing.assert_close(module(x), net(x), rtol=1e-5, atol=1e-5)
