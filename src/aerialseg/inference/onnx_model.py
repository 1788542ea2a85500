"""Running a segmentation model through onnxruntime (``segment --runtime onnx``).

:class:`OnnxModel` stands in for the PyTorch network inside a
:class:`~aerialseg.inference.segmenter.Segmenter`: the same blended windows, TTA and outputs,
only each batch of windows is run by onnxruntime's CPU provider. The model is an ``.onnx``
file written by ``aerialseg export`` (class table and normalisation in its metadata) or a
checkpoint exported in memory on loading.
"""

from __future__ import annotations

import json
import os
from collections import deque
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from ..classes import ClassTable
from ..errors import AerialSegError
from ..models.export import INPUT

# onnxruntime's WeightBiasQuantization pass quantises the float weights of a convolution fed by
# a DequantizeLinear per tensor: it undoes keeping a layer in float in an int8 model, and per
# tensor is worse than our per-channel int8 (first conv alone in float: 96.4 % of labels equal
# to fp32's with it, against 98.7 % all int8). It does nothing to a float model.
_DISABLED = ["WeightBiasQuantization"]


class OnnxModel:
    """An ONNX segmentation model called like the torch one: (N, 3, H, W) float tensor on the
    0-255 scale -> (N, C, H, W) logits. ``source``: a file path or the model's bytes."""

    def __init__(self, source: str | Path | bytes, threads: int | None = None):
        what = source if isinstance(source, bytes) else str(source)
        self._what, self._threads, self._pair = what, threads, None
        self.session = _session(what, threads)
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("target") == "deepness":
            raise AerialSegError(
                f"{what}: a model for the Deepness QGIS plugin (0-1 input, fixed tile); "
                "export one without --target for aerialseg"
            )
        if "aerialseg" not in props:
            raise AerialSegError(f"{what}: an ONNX model, but not one aerialseg exported")
        self.meta = json.loads(props["aerialseg"])
        self.config = self.meta["model"]
        self.num_classes = int(self.config["num_classes"])

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {INPUT: _feed(x)})[0])

    def pair(self) -> PairedRuns | None:
        """This model run two passes at a time, each on half the threads (for TTA's eight
        passes over a window), or None with fewer than two threads. Why: a pass on two
        threads waits on memory for much of its time (most layers are memory-bound) and
        syncs its threads at each of ~360 nodes; two one-thread passes at once overlap those
        waits: 8x TTA on a 1024² image in 0.88-0.90x the time with int8 on a 2-core AMD EPYC
        (benchmarks/paper_speed.py), for two passes' activations held at once (+0.3 GB).
        onnxruntime's results do not depend on the thread count, so the labels are the same
        (docs/experiments.md, "TTA's passes two at a time")."""
        threads = self._threads or _cpus()
        if threads < 2:
            return None
        if self._pair is None:  # made once, on first use: a second session of the same model
            self._pair = PairedRuns(_session(self._what, threads // 2))
        return self._pair


class PairedRuns:
    """A session run from two threads at once (:meth:`map`)."""

    def __init__(self, session):
        self.session, self._pool = session, None

    def map(self, xs):
        """The logits of each input, in order, two runs in flight at most. Only the runs are
        on the two threads, their inputs made and outputs used on the caller's: tensors
        allocated on other threads come from glibc's per-thread heaps, which hold 64 MB each
        and hand their pages back when freed (50-180k fresh pages faulted in per 1024² image
        when the flips and softmax ran there too). The threads are kept from call to call."""
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="aerialseg-onnx")

        def start(x):
            return self._pool.submit(self.session.run, None, {INPUT: _feed(x)})

        xs = iter(xs)
        pending = deque(map(start, islice(xs, 2)))
        try:
            while pending:
                out = pending.popleft().result()[0]
                pending.extend(map(start, islice(xs, 1)))  # the next run, before this is used
                yield torch.from_numpy(out)
        finally:  # abandoned (an error downstream): nothing left running on the way out
            for f in pending:
                f.cancel() or f.result()


def _cpus() -> int:
    """The CPUs this process may run on (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _session(what: str | bytes, threads: int | None):
    """An onnxruntime session of ``what`` (a path or the model's bytes); one line if it is not
    an ONNX model or onnxruntime is missing."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise AerialSegError(
            "--runtime onnx needs onnxruntime: pip install 'aerialseg[onnx]'"
        ) from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(
            what, opts, providers=["CPUExecutionProvider"], disabled_optimizers=_DISABLED
        )
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        name = "the exported model" if isinstance(what, bytes) else what
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AerialSegError(f"{name}: not a loadable ONNX model ({first})") from None


def _feed(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)


def load_onnx(path: str | Path) -> tuple[OnnxModel, ClassTable, dict]:
    """A model on onnxruntime, its classes and metadata: an ``.onnx`` file, or a checkpoint
    exported in memory (:func:`~.segmenter.load_segmenter` makes the Segmenter)."""
    path = Path(path)
    if not path.is_file():
        raise AerialSegError(f"{path}: no such model file")
    if path.suffix.lower() == ".onnx":
        model = OnnxModel(path)
    else:
        from ..models.checkpoint import load_checkpoint
        from ..models.export import onnx_bytes

        net, classes, meta = load_checkpoint(path)
        meta.setdefault("name", path.stem)
        model = OnnxModel(onnx_bytes(net, classes, meta))
    meta = dict(model.meta)
    meta.setdefault("name", path.stem)
    classes = ClassTable.from_dict(meta["classes"])
    return model, classes, meta
