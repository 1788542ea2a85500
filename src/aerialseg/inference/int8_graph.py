"""Rewrites of the exported graph for int8 (:mod:`.int8`): which nodes stay in float, and
skip concatenations split so that each input keeps its own int8 scale."""

from __future__ import annotations

import numpy as np

# The convolutions before this stride-2 one stay in float (:func:`float_convs`).
FLOAT_UNTIL_STRIDED = 3
# What may lie between a convolution and the next one it feeds (an activation).
_ACTIVATIONS = ("Relu", "Clip")


def float_nodes(model) -> list[str]:
    """The names of the nodes of ``model`` (an onnx ModelProto) that stay in float:
    :func:`float_convs` and every node outside the convolutions (the input's normalisation
    and padding before the first, the logits' upsampling and crop after the last). Why the
    latter: their neighbours are float anyway, so quantising them only adds a rounding (the
    upsampled logits held to 256 levels) and a quantise/dequantise pair each."""
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if not convs:
        return []
    outside = [n.name for i, n in enumerate(nodes) if i < convs[0] or i > convs[-1]]
    return float_convs(model) + outside


def float_convs(model) -> list[str]:
    """The names of the convolutions of ``model`` (an onnx ModelProto) kept in float:
    those before its :data:`FLOAT_UNTIL_STRIDED`-th stride-2 one (the stem and the first
    stages, at 1/2 and 1/4 of the input's resolution), except the one feeding that strided
    convolution. Why: int8 errors made early grow through the whole network; on the bundled
    model, these 9 of its 61 convolutions in float take the held-out labels equal to fp32's
    from 98.8 % to 99.4 % (other places 95.9 % -> 98.1 %); any later stage in float gained
    less than 0.1 point. The one feeding the strided convolution (an EfficientNet block's
    1x1 expansion) is int8 because float hands over to int8 at its input, 24 channels, not
    its output, 144: 0.89-0.93x the time a pass takes with it in float, and as many labels
    equal to fp32's (docs/experiments.md). A model with fewer strided convolutions is all
    int8."""
    producer = {out: node for node in model.graph.node for out in node.output}
    names, strided = [], 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), [1])
        strided += max(strides) > 1
        if strided == FLOAT_UNTIL_STRIDED:
            feeder = producer.get(node.input[0])
            while feeder is not None and feeder.op_type in _ACTIVATIONS:
                feeder = producer.get(feeder.input[0])
            return [n for n in names if feeder is None or n != feeder.name]
        names.append(node.name)
    return []


def split_concats(model) -> None:
    """Rewrite each ``Conv(Concat(a, b))`` of ``model`` (an onnx ModelProto, shapes inferred)
    as ``Conv_a(a) + Conv_b(b)``, the same function. Why: a Concat's int8 output has one
    scale for both inputs, and the U-Net decoder concatenates a ReLU output (0..10) with an
    encoder skip (-75..75), which left the ReLU branch some 17 levels; split, each input keeps
    its own scale (held-out labels equal to fp32's: docs/experiments.md)."""
    from onnx import helper, numpy_helper

    g = model.graph
    channels = {
        v.name: v.type.tensor_type.shape.dim[1].dim_value
        for v in [*g.value_info, *g.input]
        if len(v.type.tensor_type.shape.dim) == 4
    }
    weights = {t.name: t for t in g.initializer}
    users = _users(g)
    nodes, dropped = [], set()
    for node in g.node:
        nodes.append(node)
        conv = users.get(node.output[0], [None])
        if node.op_type != "Concat" or len(node.input) != 2 or len(conv) != 1:
            continue
        conv, attrs = conv[0], {a.name: helper.get_attribute_value(a) for a in node.attribute}
        conv_attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        first = channels.get(node.input[0], 0)
        if (
            conv.op_type != "Conv"
            or attrs.get("axis") != 1
            or conv_attrs.get("group", 1) != 1
            or conv.input[1] not in weights
            or not first
        ):
            continue
        w = numpy_helper.to_array(weights[conv.input[1]])
        parts = []
        halves = [(node.input[0], w[:, :first]), (node.input[1], w[:, first:])]
        for k, (x, part) in enumerate(halves):
            name = f"{conv.input[1]}.part{k}"
            g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(part), name))
            inputs = [x, name] + list(conv.input[2:] if k == 0 else [])  # the bias once
            parts.append(f"{conv.output[0]}_part{k}")
            nodes.append(
                helper.make_node("Conv", inputs, [parts[-1]], f"{conv.name}_part{k}", **conv_attrs)
            )
        nodes.append(helper.make_node("Add", parts, list(conv.output), f"{conv.name}_sum"))
        dropped.update((("Concat", node.output[0]), ("Conv", conv.output[0])))
    _set_nodes(g, [n for n in nodes if (n.op_type, n.output[0]) not in dropped])


def upsampling_by_phases(model) -> dict[str, str]:
    """Rewrite each ``Conv3x3(Resize(x, nearest, 2x))`` of ``model`` (an onnx ModelProto) as
    four 2x2 convolutions of ``x``, one per output phase (row and column parity), interleaved
    by ``DepthToSpace``: the same function. Returns {new tensor: the tensor whose int8 range
    it takes}: each phase holds a share of the convolution's outputs, so they share its
    scale, and the interleaving is then a copy of bytes.

    Why: the upsampled tensor repeats each pixel four times, so a 3x3 window over it holds
    only 2x2 distinct inputs; per phase the convolution is a 2x2 one on ``x`` with its taps
    summed (4/9 of the multiply-adds), and the upsampled tensor is never made. In the
    bundled model's decoder, a one-thread int8 pass takes 0.93x the time (what TTA's paired
    passes run on); on two threads 0.99x (onnxruntime's uint8 DepthToSpace costs nearly
    what the Resize did)."""
    from onnx import helper, numpy_helper

    g = model.graph
    consts = {t.name: t for t in g.initializer}
    users = _users(g)
    nodes, dropped, derived = [], set(), {}
    for node in g.node:
        nodes.append(node)
        conv = users.get(node.output[0], [None])
        if node.op_type != "Resize" or len(conv) != 1 or not _doubles(node, consts):
            continue
        conv = conv[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if (
            conv.op_type != "Conv"
            or conv.input[1] not in consts
            or attrs.get("kernel_shape") != [3, 3]
            or attrs.get("pads") != [1, 1, 1, 1]
            or attrs.get("group", 1) != 1
            or attrs.get("strides", [1, 1]) != [1, 1]
            or attrs.get("dilations", [1, 1]) != [1, 1]
        ):
            continue
        nodes.pop()  # the Resize: nothing else reads its output
        w = numpy_helper.to_array(consts[conv.input[1]])
        phases = []
        for a in (0, 1):
            for b in (0, 1):
                name = f"{conv.input[1]}.phase{a}{b}"
                taps = _fold(_fold(w, a, axis=2), b, axis=3).astype(np.float32)
                g.initializer.append(numpy_helper.from_array(taps, name))
                phases.append(f"{conv.output[0]}_phase{a}{b}")
                nodes.append(
                    helper.make_node(
                        "Conv",
                        [node.input[0], name, *conv.input[2:]],
                        [phases[-1]],
                        f"{conv.name}_phase{a}{b}",
                        kernel_shape=[2, 2],
                        pads=[1 - a, 1 - b, a, b],  # phase 0 reaches one pixel back, 1 ahead
                    )
                )
        stacked = f"{conv.output[0]}_phases"
        nodes.append(helper.make_node("Concat", phases, [stacked], f"{conv.name}_phases", axis=1))
        # DCR: channel (2a + b) * C + c of the stack goes to pixel (2y + a, 2x + b) of channel c
        nodes.append(
            helper.make_node(
                "DepthToSpace", [stacked], list(conv.output), f"{conv.name}_interleave",
                blocksize=2, mode="DCR",
            )
        )  # fmt: skip
        derived.update({t: conv.output[0] for t in [*phases, stacked]})
        dropped.add(conv.name)
    _set_nodes(g, [n for n in nodes if n.name not in dropped])
    return derived


def _users(g) -> dict[str, list]:
    """{tensor name: the nodes of graph ``g`` that read it}."""
    users: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _set_nodes(g, nodes) -> None:
    """Make ``nodes`` graph ``g``'s nodes, and drop the weights none of them reads."""
    del g.node[:]
    g.node.extend(nodes)
    used = {name for n in g.node for name in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)


def _doubles(resize, consts) -> bool:
    """Whether a Resize node is a nearest 2x upsampling of both sides, pixel (y, x) from
    (y // 2, x // 2) (halves round down either way)."""
    from onnx import helper, numpy_helper

    attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
    scales = resize.input[2] if len(resize.input) > 2 else ""
    return (
        attrs.get("mode") == b"nearest"
        and attrs.get("coordinate_transformation_mode") == b"asymmetric"
        and attrs.get("nearest_mode", b"round_prefer_floor") in (b"floor", b"round_prefer_floor")
        and scales in consts
        and numpy_helper.to_array(consts[scales]).tolist() == [1, 1, 2, 2]
    )


def _fold(w: np.ndarray, phase: int, axis: int) -> np.ndarray:
    """A 3x3 kernel's taps along ``axis`` (offsets -1, 0, 1 on the upsampled grid) as the 2
    taps of one output phase on the grid before it: phase 0 reads pixels i - 1 (tap -1) and
    i (taps 0 and 1), phase 1 reads i (taps -1 and 0) and i + 1 (tap 1)."""
    t = [np.take(w, k, axis=axis) for k in range(3)]
    pair = [t[0], t[1] + t[2]] if phase == 0 else [t[0] + t[1], t[2]]
    return np.stack(pair, axis=axis)
