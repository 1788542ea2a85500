"""``aerialseg export`` and ``segment --runtime onnx`` from the command line (in-process)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aerialseg.cli import main

from ..helpers import make_scene

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")


@pytest.mark.slow  # the bundled model's export: ~20 s; make test-slow (and CI) run it
def test_export_then_segment_with_onnx_equals_pytorch(onnx_default, tmp_path, capsys):
    onnx_file, out = onnx_default  # `aerialseg export --out FILE`: the bundled model
    assert "max |logit difference| vs PyTorch" in out and "labels equal 100.00%" in out
    # an existing file is kept
    assert main(["export", "--out", str(onnx_file)]) == 2
    assert "exists" in capsys.readouterr().err

    photo, _ = make_scene(147, 201, seed=3)  # odd sides; two 128-pixel windows each way
    Image.fromarray(photo).save(tmp_path / "scene.png")
    common = ["--window", "128", "--batch-size", "2", "-q"]
    onnx_args = ["--runtime", "onnx", "--model", str(onnx_file)]
    for extra, folder in ((onnx_args, "onnx"), (["--precision", "fp32"], "torch")):
        args = ["segment", str(tmp_path / "scene.png"), "--out", str(tmp_path / folder)]
        assert main([*args, *extra, *common]) == 0
    labels = [np.array(Image.open(tmp_path / f / "scene_labels.png")) for f in ("onnx", "torch")]
    assert labels[0].shape == (147, 201)
    assert (labels[0] == labels[1]).mean() >= 0.999


@pytest.mark.slow  # the bundled model's export: ~20 s; make test-slow (and CI) run it
def test_onnx_model_needs_the_onnx_runtime_and_the_cpu(onnx_default, tmp_path, capsys):
    onnx_file = onnx_default[0]
    photo, _ = make_scene(64, 64, seed=1)
    Image.fromarray(photo).save(tmp_path / "a.png")
    capsys.readouterr()
    args = ["segment", str(tmp_path / "a.png"), "--model", str(onnx_file), "-q"]
    assert main([*args, "--runtime", "torch", "--out", str(tmp_path / "x")]) == 2
    assert "runs with --runtime onnx" in capsys.readouterr().err
    assert main([*args, "--device", "cuda", "--out", str(tmp_path / "y")]) == 2
    assert "runs on the CPU" in capsys.readouterr().err
    # the runtime follows the file: a .onnx model needs no --runtime
    assert main([*args, "--out", str(tmp_path / "z")]) == 0


# Three ONNX exports of a checkpoint: slow (in CI's `make test-slow`); the library path, its
# errors and its determinism are covered by default in tests/inference/test_int8.py.
@pytest.mark.slow
def test_calibrate_int8_then_segment_with_precision_int8(tmp_path, capsys):
    from ..helpers import tiny_checkpoint

    model = tiny_checkpoint(tmp_path / "tiny.safetensors", seed=0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for s in range(2):
        Image.fromarray(make_scene(80, 96, seed=s)[0]).save(photos / f"p{s}.png")
    scene = tmp_path / "scene.png"
    Image.fromarray(make_scene(70, 90, seed=5)[0]).save(scene)
    segment = ["segment", str(scene), "--model", str(model), "--precision", "int8", "-q"]
    # without ranges: one line naming the checkpoint and how to make them
    assert main([*segment, "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tiny.safetensors: no int8 ranges" in err
    cal = ["calibrate-int8", "--model", str(model), str(photos), "--crops", "3"]
    assert main([*cal, "--crop-size", "64"]) == 0
    assert "tiny.int8.json" in capsys.readouterr().out
    assert main([*segment, "--out", str(tmp_path / "a")]) == 0
    assert main([*segment, "--out", str(tmp_path / "b")]) == 0
    a, b = (np.asarray(Image.open(tmp_path / d / "scene_labels.png")) for d in "ab")
    assert a.shape == (70, 90) and np.array_equal(a, b)
