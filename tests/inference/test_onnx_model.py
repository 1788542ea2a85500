"""onnxruntime models: TTA's passes two at a time give the labels one at a time gives."""

import threading
import time

import numpy as np
import pytest
import torch

from aerialseg.inference import onnx_model
from aerialseg.inference.onnx_model import OnnxModel, PairedRuns
from aerialseg.models.export import INPUT

from ..helpers import make_scene, tiny_checkpoint

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A tiny checkpoint exported to ONNX bytes."""
    from aerialseg.models.checkpoint import load_checkpoint
    from aerialseg.models.export import onnx_bytes

    path = tiny_checkpoint(tmp_path_factory.mktemp("onnx") / "tiny.safetensors", seed=0)
    net, classes, meta = load_checkpoint(path)
    return onnx_bytes(net, classes, {**meta, "name": "tiny"})


def test_map_keeps_the_order_with_two_in_flight():
    busy, most = [0], [0]
    lock = threading.Lock()

    class Slow:  # a session whose even inputs take longest: runs finish out of order
        def run(self, names, feed):
            x = feed[INPUT]
            with lock:
                busy[0] += 1
                most[0] = max(most[0], busy[0])
            time.sleep(0.02 if int(x.flat[0]) % 2 == 0 else 0.001)
            with lock:
                busy[0] -= 1
            return [x * x]

    xs = (torch.full((1, 3, 2, 2), float(i)) for i in range(7))
    got = [float(y.flatten()[0]) for y in PairedRuns(Slow()).map(xs)]
    assert got == [i * i for i in range(7)]
    assert most[0] == 2


def test_tta_in_pairs_gives_the_same_probabilities(tiny_onnx, monkeypatch):
    from aerialseg.inference.segmenter import Segmenter
    from aerialseg.inference.tiling import Tiling

    model = OnnxModel(tiny_onnx, threads=2)
    assert model.pair() is model.pair() is not None  # one second session, made once
    seg = Segmenter(model, *_classes_meta(model), tiling=Tiling(window=64))  # 4 windows
    rgb = make_scene(90, 70, seed=3)[0]
    paired = seg.predict_proba(rgb, tta=True)
    monkeypatch.setattr(OnnxModel, "pair", lambda self: None)
    assert np.array_equal(seg.predict_proba(rgb, tta=True), paired)


def test_one_thread_runs_no_pairs(tiny_onnx, monkeypatch):
    assert OnnxModel(tiny_onnx, threads=1).pair() is None
    monkeypatch.setattr(onnx_model, "_cpus", lambda: 1)
    assert OnnxModel(tiny_onnx).pair() is None  # the default: as many threads as CPUs


def _classes_meta(model):
    from aerialseg.classes import ClassTable

    return ClassTable.from_dict(model.meta["classes"]), dict(model.meta)
