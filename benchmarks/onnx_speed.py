"""Segmenting a 1024 x 1024 image with onnxruntime against PyTorch, on this CPU.

The same blended windows (``Segmenter.segment``, 1024 windows in batches of 2) with the same
network (the bundled model unless --model, batch norm folded): PyTorch at its default
precision (bf16 where the CPU does it natively), PyTorch fp32, and onnxruntime's CPU provider
(fp32, the model exported in memory as ``aerialseg export`` would). Setups alternate over
``--rounds`` in one process; medians are reported, with the ratio and label agreement.

    python benchmarks/onnx_speed.py [--model PATH] [--rounds 5] [--threads N]

Figure: the onnxruntime vs PyTorch 1024² segmenting ratios, quoted in docs/results.md
(runtimes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aerialseg.classes import ClassTable
from aerialseg.inference.onnx_model import OnnxModel
from aerialseg.inference.segmenter import DEFAULT_MODEL, Segmenter, load_segmenter
from aerialseg.models.checkpoint import load_checkpoint
from aerialseg.models.export import onnx_bytes

try:  # run as a script from the repository root or from benchmarks/
    from segment_speed import test_image
except ImportError:
    from benchmarks.segment_speed import test_image


def onnx_segmenter(path: str | None, threads: int | None) -> Segmenter:
    """What ``load_segmenter(path, runtime="onnx")`` gives, with onnxruntime's thread count."""
    model, classes, meta = load_checkpoint(path or DEFAULT_MODEL)
    meta.setdefault("name", "model")
    onnx = OnnxModel(onnx_bytes(model, classes, meta), threads)
    return Segmenter(onnx, ClassTable.from_dict(onnx.meta["classes"]), onnx.meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: bundled)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, help="threads for both (default: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rgb, what = test_image()
    setups = {
        "pytorch default": load_segmenter(args.model, device="cpu"),
        "pytorch fp32": load_segmenter(args.model, precision="fp32", device="cpu"),
        "onnxruntime": onnx_segmenter(args.model, args.threads),
    }
    times: dict[str, list[float]] = {k: [] for k in setups}
    labels = {}
    for seg in setups.values():
        seg.segment(rgb[:256, :256])  # warm-up
    for _ in range(args.rounds):
        for name, seg in setups.items():
            t0 = time.perf_counter()
            labels[name] = seg.segment(rgb)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"1024x1024 image ({what}), {torch.get_num_threads()} torch threads, "
          f"median of {args.rounds}:")  # fmt: skip
    for name, seg in setups.items():
        same = float((labels[name] == labels["pytorch fp32"]).mean())
        print(f"  {name:<16} {seg.precision:<5} {med[name]:7.3f} s   labels = pytorch fp32: "
              f"{same:.4%}")  # fmt: skip
    ort, pt = med["onnxruntime"], med["pytorch default"]
    print(f"  onnxruntime / pytorch default = {ort / pt:.2f} (time ratio; < 1: onnxruntime faster)")
    print(f"  onnxruntime / pytorch fp32    = {ort / med['pytorch fp32']:.2f}")


if __name__ == "__main__":
    main()
