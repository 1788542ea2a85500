"""`export --format onnx --target deepness` keeps the contract the Deepness QGIS plugin's model
loader reads (its processing/models/model_base.py and segmentor.py): JSON metadata keys, a
fixed square NCHW input with a free batch, softmax probabilities out, opset 17 / IR 8 for the
onnxruntime it pins. Deepness's own code runs it in benchmarks/deepness_check.py; these tests
need no copy of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aerialseg.errors import AerialSegError
from aerialseg.models.checkpoint import load_checkpoint
from aerialseg.models.deepness import deepness_onnx_bytes
from aerialseg.models.export import inference_copy

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

TILE = 128  # small: the export and the runs take well under a second with the tiny model


@pytest.fixture(scope="module")
def exported(tiny_model):
    """(model, classes, the exported bytes) of a tiny model trained at 0.5 m/px."""
    model, classes, meta = load_checkpoint(tiny_model)
    meta = {**meta, "name": "tiny", "train_config": {"gsd": 0.5}}
    return model, classes, deepness_onnx_bytes(model, classes, meta, TILE)


def props(data: bytes) -> dict[str, str]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.get_modelmeta().custom_metadata_map


def test_metadata_holds_the_keys_deepness_reads_as_json(exported):
    _, classes, data = exported
    meta = {k: v for k, v in props(data).items()}
    assert json.loads(meta["model_type"]).capitalize() == "Segmentor"  # its ModelType value
    names = json.loads(meta["class_names"])
    assert list(names) == [str(i) for i in range(len(classes.names))]  # "0".."N-1", in order
    assert list(names.values()) == list(classes.names)
    assert float(json.loads(meta["resolution"])) == 50.0  # 0.5 m -> cm/px
    assert int(json.loads(meta["tile_size"])) == TILE
    assert 0 < int(json.loads(meta["tiles_overlap"])) < 50  # per cent
    assert float(json.loads(meta["seg_thresh"])) == 0.0  # plain argmax, as `segment`
    assert int(json.loads(meta["seg_small_segment"])) == 0
    assert json.loads(meta["standardization_mean"]) == [0.0, 0.0, 0.0]  # /255 is undone inside
    assert json.loads(meta["standardization_std"]) == [1.0, 1.0, 1.0]
    assert meta["target"] == "deepness"


def test_fixed_square_input_free_batch_opset_17_ir_8(exported):
    import onnx

    _, classes, data = exported
    proto = onnx.load_from_string(data)
    assert proto.ir_version == 8
    assert {o.domain or "": o.version for o in proto.opset_import}[""] == 17
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [3, TILE, TILE]  # NCHW
    assert isinstance(out.shape[0], str) and out.shape[1:] == [len(classes.names), TILE, TILE]


def test_probabilities_sum_to_one_and_match_pytorch_on_0_1_input(exported):
    model, _, data = exported
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, TILE, TILE, generator=torch.Generator().manual_seed(0))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    with torch.inference_mode():
        expected = torch.softmax(inference_copy(model)(x * 255), 1).numpy()  # 0-255 inside
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_refuses_a_model_without_resolution_and_odd_tiles(tiny_model):
    model, classes, meta = load_checkpoint(tiny_model)
    with pytest.raises(AerialSegError, match="train_config.gsd"):
        deepness_onnx_bytes(model, classes, {**meta, "train_config": {}}, TILE)
    with pytest.raises(AerialSegError, match="multiple of 32"):
        deepness_onnx_bytes(model, classes, {**meta, "train_config": {"gsd": 1}}, 100)


def test_aerialseg_onnx_runner_refuses_the_deepness_file(exported, tmp_path):
    from aerialseg.inference.onnx_model import OnnxModel

    path = tmp_path / "deepness.onnx"
    path.write_bytes(exported[2])
    with pytest.raises(AerialSegError, match="Deepness"):
        OnnxModel(path)


def test_cli_exports_the_bundled_model_and_refuses_other_formats(tmp_path, capsys):
    from aerialseg.cli import main

    out = tmp_path / "default.onnx"
    assert main(["export", "--target", "deepness", "--tile-size", "128", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "opset 17, IR 8, 128x128 tiles, 100 cm/px" in printed  # the Dubai model: 1 m
    assert "labels equal 100.00%" in printed
    assert json.loads(props(out.read_bytes())["tile_size"]) == 128
    args = ["export", "--format", "torchscript", "--target", "deepness", "--out", str(out)]
    assert main([*args, "--overwrite"]) == 2
    assert "use --format onnx" in capsys.readouterr().err
