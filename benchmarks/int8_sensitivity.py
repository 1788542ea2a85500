"""Which layers int8 hurts: the bundled model quantised with one group of convolutions at a
time left in float (and the nodes outside the convolutions, as ``float_nodes`` leaves them),
scored by the share of labels equal to fp32's on crops of *training* images of tiles 5 and 7
(neither the calibration images, tiles 1-4 and 6, nor the held-out ones), and with
``--held-out`` also on the held-out images, whole.

    python benchmarks/int8_sensitivity.py [--crops 12] [--held-out] [--nodes]

``--nodes``: every convolution and Add alone in float instead of the groups (slow).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from aerialseg.classes import DUBAI
from aerialseg.config import data_root
from aerialseg.data.segmentation import find_pairs, load_sample
from aerialseg.inference import int8
from aerialseg.inference.int8_graph import float_convs, float_nodes
from aerialseg.inference.onnx_model import OnnxModel
from aerialseg.inference.segmenter import DEFAULT_MODEL, Segmenter, load_segmenter
from aerialseg.io.images import read_image
from aerialseg.models.checkpoint import load_checkpoint
from aerialseg.models.export import onnx_bytes


def groups(model, nodes: bool) -> dict[str, list[str]]:
    graph = model.graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    if nodes:
        return {n.name: [n.name] for n in graph.node if n.op_type in ("Conv", "Add")}

    def block(n) -> str:  # the EfficientNet-Lite block of its weight, else its module
        w = n.input[1]
        return w.split(".")[1] if w.startswith("_blocks.") else w.split(".")[0]

    def blocks(*ids):
        return [n.name for n in convs if block(n) in {str(i) for i in ids}]

    return {
        "none (all int8)": [],
        "stem + block 0": blocks("_conv_stem", 0),
        "blocks 1-2": blocks(1, 2),
        "blocks 3-4": blocks(3, 4),
        "blocks 5-10": blocks(*range(5, 11)),
        "blocks 11-15": blocks(*range(11, 16)),
        "decoder + head": [n.name for n in convs if block(n) in ("decoder", "head")],
        "depthwise convs": [n.name for n in convs if "_depthwise_conv" in n.input[1]],
        "the default (float_convs)": float_convs(model),
        "  and block 3's expansion": float_convs(model) + blocks(3)[:1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=12, help="512² crops of tiles 5 and 7")
    ap.add_argument("--held-out", action="store_true", help="also the held-out images")
    ap.add_argument("--nodes", action="store_true", help="each node alone, not groups")
    ap.add_argument("--data", help="the Dubai dataset (default: $AERIALSEG_DATA)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fp32 = load_segmenter(None, precision="fp32", device="cpu")
    held = set(fp32.meta["val_images"])
    pairs = find_pairs(data_root(args.data))
    places = ("Tile 5", "Tile 7")
    train = [read_image(p.image) for p in pairs if p.id not in held and p.group in places]
    images = int8.crops(train, args.crops, 512, seed=1)
    if args.held_out:
        images += [load_sample(p, DUBAI).image for p in pairs if p.id in held]
    n_crops = args.crops
    refs = [fp32.segment(im) for im in images]
    net, classes, meta = load_checkpoint(DEFAULT_MODEL)
    model = onnx_bytes(net, classes, meta)
    calibration, _ = int8.read_ranges(DEFAULT_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = onnx.load(int8._prepared(model, Path(tmp)))
    print(f"labels equal to fp32's, {n_crops} crops" + (", held-out" if args.held_out else ""))
    # what lies outside the convolutions stays float in every row, as in the default
    outside = [n for n in float_nodes(prepared) if n not in float_convs(prepared)]
    for name, nodes in groups(prepared, args.nodes).items():
        seg = Segmenter(*_int8(int8.quantize(model, calibration, float_nodes=nodes + outside)))
        same = [(seg.segment(im) == r) for im, r in zip(images, refs)]
        crops = np.mean(np.concatenate([s.ravel() for s in same[:n_crops]]))
        line = f"{name:28}{len(nodes):>4} float {crops:.4f}"
        if args.held_out:
            line += f"  {np.mean(np.concatenate([s.ravel() for s in same[n_crops:]])):.4f}"
        print(line, flush=True)


def _int8(model: bytes):
    from aerialseg.classes import ClassTable

    m = OnnxModel(model, 1)
    return m, ClassTable.from_dict(m.meta["classes"]), {**m.meta, "precision": "int8"}


if __name__ == "__main__":
    main()
