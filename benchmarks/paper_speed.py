"""Segmenting a 1024 x 1024 image with 8x TTA: aerialseg against the paper's own stack.

The paper's inference is its Keras U-Net on TensorFlow-CPU (``keras_anchor.keras_unet``: the
network as its code builds it) run through Vooban's smooth windowing, which the paper used:
the image reflect-padded by half a window, its 8 rotations/mirrors, for each all 256² windows
at 50 % overlap predicted with ``model.predict`` (Keras' default batches of 32), each weighted
by the 2-D spline window, merged, un-rotated and averaged. Speed does not depend on the
weights, so the network is untrained (seeded); the 256-window pass over the padded image is
the same work whatever it predicts.

Against it, in the same process and in alternating rounds, ``aerialseg``'s ``Segmenter`` on
the same crop at the precisions asked for (``auto`` is what ``aerialseg segment`` picks: bf16
on a CPU with fast bf16, else fp32; ``int8`` needs the ``onnx`` extra), with and without TTA;
for int8 also TTA's eight passes one at a time (before they ran two at a time, each on half
the threads: ``OnnxModel.pair``).
TensorFlow is not a dependency of aerialseg; for this benchmark only:

    pip install tensorflow-cpu
    python benchmarks/paper_speed.py [--rounds 3] [--threads 2] [--precisions auto,int8]

Figure: how many times faster than the paper's code aerialseg segments a 1024² image with 8x
TTA (issue 23 asks >= 25x), quoted in docs/results.md (segmenting speed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from aerialseg.runtime import passive_thread_waits, reuse_freed_memory

passive_thread_waits()  # as the aerialseg command does, before torch loads (see runtime)
reuse_freed_memory()  # as the aerialseg command does, before any thread allocates

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:  # run as a script from the repository root or from benchmarks/
    from keras_anchor import import_keras, keras_unet
    from segment_speed import seed_spline_window, test_image
except ImportError:
    from benchmarks.keras_anchor import import_keras, keras_unet
    from benchmarks.segment_speed import seed_spline_window, test_image

from aerialseg.inference.segmenter import Segmenter, load_segmenter  # noqa: E402


def paper_predict(model, rgb: np.ndarray, window: int = 256, classes: int = 6) -> np.ndarray:
    """The paper's smooth windowing with 8x TTA, as Vooban's method does it, in float32."""
    step, pad = window // 2, window // 2  # 2 subdivisions: pad by window * (1 - 1/2)
    padded = np.pad(rgb.astype(np.float32) / 255, ((pad, pad), (pad, pad), (0, 0)), "reflect")
    spline = seed_spline_window(window)[..., None].astype(np.float32)
    total = np.zeros((*padded.shape[:2], classes), np.float32)
    for k in range(8):
        img = np.rot90(padded, k % 4)
        img = img[:, ::-1] if k >= 4 else img
        h, w = img.shape[:2]
        corners = [(y, x) for y in range(0, h - window + 1, step)
                   for x in range(0, w - window + 1, step)]  # fmt: skip
        batch = np.stack([img[y : y + window, x : x + window] for y, x in corners])
        probs = model.predict(batch, verbose=0) * spline
        merged = np.zeros((h, w, classes), np.float32)
        for (y, x), p in zip(corners, probs):
            merged[y : y + window, x : x + window] += p
        merged = merged[:, ::-1] if k >= 4 else merged
        total += np.rot90(merged, -(k % 4))
    return total[pad:-pad, pad:-pad] / 8


class OnePassAtATime:
    """An onnxruntime model without ``pair()``: TTA's eight passes one after another, each on
    all the threads, as before they ran two at a time (the baseline of that change)."""

    def __init__(self, model):
        self.model, self.num_classes = model, model.num_classes

    def eval(self):
        return self

    def __call__(self, x):
        return self.model(x)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: bundled)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="for TensorFlow and aerialseg alike")
    ap.add_argument("--precisions", default="auto", help="aerialseg's, comma-separated")
    args = ap.parse_args()
    keras, tf = import_keras("paper_speed.py")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    torch.set_num_threads(args.threads)

    rgb, what = test_image()
    keras.utils.set_random_seed(0)
    paper = keras_unet(keras)
    paper_predict(paper, rgb[:256, :256])  # warm-up: graph building, oneDNN kernels
    segs = {p: load_segmenter(args.model, precision=p) for p in args.precisions.split(",")}
    jobs = {"paper's code (Keras, smooth windowing, 8x TTA)": lambda: paper_predict(paper, rgb)}
    for p, seg in segs.items():
        seg.segment(rgb[:512, :512], tta=True)  # warm-up
        jobs[f"aerialseg {p} ({seg.precision}), 8x TTA"] = lambda s=seg: s.segment(rgb, tta=True)
        jobs[f"aerialseg {p} ({seg.precision}), no TTA"] = lambda s=seg: s.segment(rgb)
        if hasattr(seg.model, "pair"):  # onnxruntime: also TTA's passes one at a time
            one = Segmenter(OnePassAtATime(seg.model), seg.classes, seg.meta, tiling=seg.tiling)
            jobs["  the same, 8x TTA one pass at a time"] = lambda s=one: s.segment(rgb, tta=True)
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(args.rounds):
        for name, fn in jobs.items():
            times[name].append(timed(fn))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    load = os.getloadavg()[0]
    print(f"1024x1024 ({what}), {args.threads} threads, load {load:.1f}, "
          f"median of {args.rounds} alternating rounds")  # fmt: skip
    paper_s = statistics.median(next(iter(times.values())))
    for name, ts in times.items():
        t = statistics.median(ts)
        spread = f"{min(ts):.3f}-{max(ts):.3f}"
        print(f"  {name:48s} {t:8.3f} s  paper/this {paper_s / t:6.1f}x  ({spread})")


if __name__ == "__main__":
    main()
