"""int8 through onnxruntime: built from stored ranges alone, deterministic, close to fp32."""

import json
import os
import sys

import numpy as np
import pytest

from aerialseg.errors import AerialSegError
from aerialseg.inference import int8

from ..helpers import make_scene, tiny_checkpoint

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")


def photos(n=3, h=96, w=128):
    return [make_scene(h, w, seed=s)[0] for s in range(n)]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A tiny checkpoint with its int8 ranges, measured on crops of synthetic scenes."""
    path = tiny_checkpoint(tmp_path_factory.mktemp("int8") / "tiny.safetensors", seed=0)
    int8.calibrate_checkpoint(path, photos(), n=4, size=64)
    return path


def test_ranges_sidecar_is_written_next_to_the_checkpoint_and_is_deterministic(calibrated):
    sidecar = calibrated.with_name("tiny.int8.json")
    assert int8.ranges_path(calibrated) == sidecar
    first = sidecar.read_bytes()
    data = json.loads(first)
    assert data["format"] == int8.FORMAT and data["crops"] == 4 and data["crop_size"] == 64
    assert all(lo <= hi for lo, hi in data["ranges"].values())
    int8.calibrate_checkpoint(calibrated, photos(), n=4, size=64)
    assert sidecar.read_bytes() == first  # same images, same crops, same file


def test_crops_are_seeded_and_fit_small_images():
    images = photos(2) + [make_scene(40, 200, seed=9)[0]]
    a, b = int8.crops(images, 5, 64, seed=1), int8.crops(images, 5, 64, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert [c.shape for c in a[:3]] == [(64, 64, 3), (64, 64, 3), (32, 32, 3)]


def test_int8_segmenter_shapes_and_same_input_same_labels(calibrated):
    from aerialseg.inference.segmenter import load_segmenter

    seg = load_segmenter(calibrated, precision="int8")
    assert seg.meta["precision"] == "int8"
    rgb = make_scene(70, 90, seed=5)[0]
    labels = seg.segment(rgb)
    assert labels.shape == (70, 90) and labels.dtype == np.uint8
    probs = seg.predict_proba(rgb)
    assert probs.shape == (70, 90, len(seg.classes))
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-4)
    assert np.array_equal(seg.segment(rgb), labels)
    # a second load quantises again from the stored ranges: the same model, the same labels
    again = load_segmenter(calibrated, precision="int8")
    assert np.array_equal(again.predict_proba(rgb), probs)


def test_int8_probabilities_follow_fp32(calibrated):
    """The tiny net is untrained, so its classes are near ties and labels are a poor yardstick:
    the probabilities are compared. 0.05 is a few int8 steps of these small logits; the
    bundled model's label agreement is measured by benchmarks/int8_speed.py --accuracy."""
    from aerialseg.inference.segmenter import load_segmenter

    rgb = make_scene(96, 128, seed=7)[0]
    fp32 = load_segmenter(calibrated, precision="fp32", device="cpu").predict_proba(rgb)
    q = load_segmenter(calibrated, precision="int8").predict_proba(rgb)
    assert np.abs(q - fp32).max() < 0.05
    assert np.abs(q - fp32).mean() < 0.01


def test_missing_corrupt_or_foreign_ranges_are_one_line(calibrated, tmp_path):
    from aerialseg.inference.segmenter import load_segmenter

    other = tiny_checkpoint(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(AerialSegError, match=r"other.safetensors: no int8 ranges.*calibrate-int8"):
        load_segmenter(other, precision="int8")
    sidecar = int8.ranges_path(other)
    sidecar.write_text("{not json")
    with pytest.raises(AerialSegError, match="other.int8.json: unreadable int8 ranges"):
        load_segmenter(other, precision="int8")
    sidecar.write_text(json.dumps({"format": 1, "ranges": {"x": [0.0, 1.0]}}))
    with pytest.raises(AerialSegError, match="other.int8.json: int8 ranges of format 1.*recal"):
        load_segmenter(other, precision="int8")
    sidecar.write_text(json.dumps({"format": int8.FORMAT, "ranges": {"x": [1.0, 0.0]}}))
    with pytest.raises(AerialSegError, match="other.int8.json: bad range for 'x'"):
        load_segmenter(other, precision="int8")
    data = json.loads(int8.ranges_path(calibrated).read_text())
    data["ranges"].pop(next(iter(data["ranges"])))
    sidecar.write_text(json.dumps(data))
    with pytest.raises(AerialSegError, match="other.int8.json: made for another export"):
        load_segmenter(other, precision="int8")


def test_int8_refuses_what_it_cannot_run(calibrated, tmp_path):
    from aerialseg.inference.segmenter import load_segmenter

    for kw in ({"runtime": "torch"}, {"device": "cuda"}):
        with pytest.raises(AerialSegError, match="int8 runs a checkpoint on the CPU"):
            load_segmenter(calibrated, precision="int8", **kw)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")
    with pytest.raises(AerialSegError, match="m.onnx: int8 is built from a checkpoint"):
        load_segmenter(onnx, precision="int8")


def test_without_onnxruntime_int8_is_one_line(calibrated, monkeypatch):
    from aerialseg.inference.segmenter import load_segmenter

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(AerialSegError, match=r"int8 needs onnxruntime: pip install"):
        load_segmenter(calibrated, precision="int8")


def test_bad_calibration_images_are_refused():
    with pytest.raises(AerialSegError, match="sides >= 32"):
        int8.crops([np.zeros((16, 64, 3), np.uint8)], 1, 64)
    with pytest.raises(AerialSegError, match="uint8"):
        int8.crops([np.zeros((64, 64, 3), np.float32)], 1, 64)
    with pytest.raises(AerialSegError, match="no calibration images"):
        int8.crops([], 1, 64)


@pytest.mark.slow  # builds int8 models (~5 s idle): keeps `make test` under 5 minutes
def test_model_from_stored_ranges_is_what_calibrating_on_the_images_builds(tmp_path):
    """The stored ranges stand in for the images exactly: the int8 model built from them is
    byte for byte onnxruntime's own quantize_static calibrated on the same crops, with the
    same nodes in float."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from aerialseg.inference.int8_graph import float_nodes, upsampling_by_phases
    from aerialseg.models.checkpoint import load_checkpoint
    from aerialseg.models.export import onnx_bytes

    net, classes, meta = load_checkpoint(tiny_checkpoint(tmp_path / "t.safetensors", seed=0))
    model = onnx_bytes(net, classes, meta)
    crops = int8.crops(photos(), 3, 64)
    built = int8.quantize(model, int8.calibrate(model, crops))
    feed = int8._Feed(c.transpose(2, 0, 1)[None].astype(np.float32) for c in crops)
    out, prepared = tmp_path / "direct.onnx", int8._prepared(model, tmp_path)
    graph = onnx.load(prepared)
    assert upsampling_by_phases(graph) == {}  # this U-Net upsamples by transposed convs
    quantize_static(
        str(prepared),
        str(out),
        feed,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=float_nodes(graph),
    )
    assert built == out.read_bytes()


def test_second_load_uses_the_cache_and_gives_the_same_labels(calibrated, monkeypatch):
    from aerialseg.inference.segmenter import load_segmenter

    rgb = make_scene(70, 90, seed=3)[0]
    first = load_segmenter(calibrated, precision="int8").segment(rgb)
    cached = list(int8.cache_dir().glob("int8-*.onnx"))
    assert cached and all(str(p).startswith(os.environ["XDG_CACHE_HOME"]) for p in cached)

    def no_build(*a, **kw):
        raise AssertionError("built again despite the cache")

    monkeypatch.setattr(int8, "quantize", no_build)
    assert np.array_equal(load_segmenter(calibrated, precision="int8").segment(rgb), first)


@pytest.mark.slow  # builds int8 models (~5 s idle): keeps `make test` under 5 minutes
def test_a_corrupted_or_stale_cache_is_rebuilt_not_trusted(calibrated, tmp_path, monkeypatch):
    from aerialseg.inference.segmenter import load_segmenter

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rgb = make_scene(70, 90, seed=4)[0]
    first = load_segmenter(calibrated, precision="int8").segment(rgb)
    (cached,) = int8.cache_dir().glob("int8-*.onnx")
    whole = cached.read_bytes()
    # one bit flipped: the checksum at its head no longer matches (a cut-off file neither)
    cached.write_bytes(whole[:100] + bytes([whole[100] ^ 1]) + whole[101:])
    assert np.array_equal(load_segmenter(calibrated, precision="int8").segment(rgb), first)
    assert cached.read_bytes() == whole  # rebuilt and written again
    # other ranges are another key: a model built from the old ones is not used
    ranges = json.loads(int8.ranges_path(calibrated).read_text())
    other = int8._cache_path(calibrated, {**ranges, "crops": ranges.get("crops", 0) + 1})
    assert other != cached and other.parent == cached.parent


@pytest.mark.slow  # builds int8 models (~5 s idle): keeps `make test` under 5 minutes
def test_an_unwritable_cache_is_no_error(calibrated, tmp_path, monkeypatch):
    from aerialseg.inference.segmenter import load_segmenter

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # its aerialseg/ cannot be made
    seg = load_segmenter(calibrated, precision="int8")
    assert seg.segment(make_scene(40, 40, seed=1)[0]).shape == (40, 40)


def test_split_concats_computes_the_same_with_no_concat_into_a_conv(tmp_path):
    """The U-Net's skip Concat -> Conv becomes two Convs and an Add: the same outputs."""
    import onnx
    import onnxruntime as ort

    from aerialseg.models.checkpoint import load_checkpoint
    from aerialseg.models.export import onnx_bytes

    net, classes, meta = load_checkpoint(tiny_checkpoint(tmp_path / "t.safetensors", seed=0))
    model = onnx_bytes(net, classes, meta)
    prepared = onnx.load(int8._prepared(model, tmp_path))
    nodes = prepared.graph.node
    fed = {i for n in nodes if n.op_type == "Conv" for i in n.input}
    assert not [n for n in nodes if n.op_type == "Concat" and n.output[0] in fed]
    assert [n for n in nodes if n.name.endswith("_sum")]  # there were some to split
    x = make_scene(64, 96, seed=2)[0].transpose(2, 0, 1)[None].astype(np.float32)
    before = ort.InferenceSession(model).run(None, {"image": x})[0]
    after = ort.InferenceSession(prepared.SerializeToString()).run(None, {"image": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-4)


def test_upsampling_by_phases_computes_the_same_with_no_nearest_upsampling():
    """Conv3x3(2x nearest Resize(x)) becomes four 2x2 convs and a DepthToSpace: the same
    outputs, and every new tensor takes the range of the conv's output."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from aerialseg.inference.int8_graph import upsampling_by_phases

    rng = np.random.default_rng(0)
    consts = {
        "scales": np.array([1, 1, 2, 2], np.float32),
        "w": rng.normal(size=(5, 3, 3, 3)).astype(np.float32),
        "bias": rng.normal(size=5).astype(np.float32),
    }
    nodes = [
        helper.make_node("Resize", ["x", "", "scales"], ["up"], "up", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Conv", ["up", "w", "bias"], ["y"], "conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 12, 14])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.normal(size=(1, 3, 6, 7)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    derived = upsampling_by_phases(model)
    kinds = [n.op_type for n in model.graph.node]
    assert kinds == ["Conv"] * 4 + ["Concat", "DepthToSpace"]
    assert set(derived.values()) == {"y"} and len(derived) == 5  # 4 phases and their stack
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_float_convs_are_those_before_the_third_strided_one_less_its_feeder():
    from onnx import helper

    from aerialseg.inference.int8_graph import float_convs, float_nodes

    def graph(strides, act_before=None):
        nodes = [helper.make_node("Sub", ["image", "mean"], ["x0"], "normalise")]
        for i, s in enumerate(strides):
            x = f"x{i}"
            if i == act_before:  # an activation between this conv and the one before
                nodes.append(helper.make_node("Clip", [f"x{i}"], [f"a{i}"], f"act{i}"))
                x = f"a{i}"
            conv = helper.make_node("Conv", [x, f"w{i}"], [f"x{i + 1}"], f"c{i}", strides=[s, s])
            nodes.append(conv)
        nodes.append(helper.make_node("Resize", [f"x{len(strides)}"], ["out"], "upsample"))
        return helper.make_model(helper.make_graph(nodes, "g", [], []))

    # c4 feeds c5, the third strided one, directly or through an activation: c4 is int8
    assert float_convs(graph([2, 1, 1, 2, 1, 2, 1, 2])) == ["c0", "c1", "c2", "c3"]
    assert float_convs(graph([2, 1, 1, 2, 1, 2, 1, 2], act_before=5)) == ["c0", "c1", "c2", "c3"]
    assert float_convs(graph([1, 1, 2, 1])) == []  # fewer strided convolutions: all int8
    # and every node outside the convolutions
    assert float_nodes(graph([1, 1, 2, 1])) == ["normalise", "upsample"]
