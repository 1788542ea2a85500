"""int8 inference on the CPU: the network exported to ONNX and quantised statically (QDQ, int8
weights per output channel, uint8 activations per tensor) for onnxruntime's CPU provider. The
stem and first stages stay in float and skip concatenations are split
(:mod:`.int8_graph`): that is what takes its labels to >= 99 % agreement with fp32's.

Why onnxruntime and not PyTorch's PT2E flow with the x86 inductor quantizer (torchao 0.18,
torch 2.13): on a 2-core AMD EPYC (AVX512-VNNI, no AMX) a 1088² forward of the PT2E model
compiled by inductor took 3.1x the time of this one, measured in the same run, and compiling
took 20-80 s for every new window shape.

Calibration needs images, inference must not: activation ranges are measured once
(:func:`calibrate`, deterministic crops of training images) and stored in a small JSON
sidecar next to the checkpoint (``NAME.int8.json``; the bundled model's ships in the wheel).
Loading rebuilds the same int8 model from those ranges alone (:func:`quantize`): same
checkpoint and sidecar, same model, same labels; the model built is cached on disk, keyed by
what it is built from (:func:`load_int8`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import AerialSegError
from ..io.files import atomic_path
from . import int8_graph

FORMAT = 2  # 2: with the ranges of the split skip concatenations (int8_graph.split_concats)
SUFFIX = ".int8.json"
EXTRA = "pip install 'aerialseg[onnx]'"
# The smallest input the exported graph takes (its reflection padding needs sides >= 32): what
# the quantizer's own calibration pass is fed before the stored ranges override every range.
_PROBE = np.zeros((1, 3, 32, 32), np.float32)


def ranges_path(model: str | Path) -> Path:
    """Where a checkpoint's int8 ranges live: ``default.safetensors`` -> ``default.int8.json``."""
    model = Path(model)
    return model.with_name(model.stem + SUFFIX)


def _ort():
    try:
        import onnxruntime
        import onnxruntime.quantization  # noqa: F401 - ships with onnxruntime
    except ImportError:
        raise AerialSegError(f"--precision int8 needs onnxruntime: {EXTRA}") from None
    return onnxruntime


@contextlib.contextmanager
def _quiet():
    """onnxruntime's quantizer logs a warning per tensor it leaves in float (shapes and
    integer index arithmetic): nothing the user can act on."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _prepared(onnx_model: bytes, tmp: Path) -> Path:
    """The model with shapes inferred, as onnxruntime's quantizer wants it, and its skip
    concatenations split (:func:`.int8_graph.split_concats`), written in ``tmp``."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out = tmp / "model.onnx", tmp / "prepared.onnx"
    src.write_bytes(onnx_model)
    with _quiet():
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    model = onnx.load(out)
    int8_graph.split_concats(model)
    onnx.save(model, out)
    return out


class _Feed:
    """onnxruntime's CalibrationDataReader protocol over (1, 3, H, W) float32 arrays."""

    def __init__(self, arrays: Iterable[np.ndarray]):
        self._it = iter(arrays)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {"image": x}

    def rewind(self):  # the MinMax calibrator reads once
        pass


def _minmax(model: Path, tmp: Path, arrays: Iterable[np.ndarray]) -> dict[str, list[float]]:
    """The min and max of every tensor the quantizer calibrates, over ``arrays`` (percentile
    and entropy calibration agreed no better with fp32: docs/experiments.md)."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    with _quiet():
        how = CalibrationMethod.MinMax
        cal = create_calibrator(str(model), None, str(tmp / "augmented.onnx"), how)
        cal.collect_data(_Feed(arrays))
        data = cal.compute_data()
    # range_value holds numpy scalars or 1-element arrays, by onnxruntime version
    return {k: [float(np.ravel(r)[0]) for r in v.range_value] for k, v in data.data.items()}


def calibrate(onnx_model: bytes, images: Iterable[np.ndarray]) -> dict:
    """The int8 ranges of an exported model (:func:`~aerialseg.models.export.onnx_bytes`)
    measured over ``images``, (H, W, 3) uint8 crops with sides >= 32: the sidecar's content."""
    _ort()
    arrays = (check_crop(im).transpose(2, 0, 1)[None].astype(np.float32) for im in images)
    with tempfile.TemporaryDirectory(prefix="aerialseg-int8-") as tmp:
        tmp = Path(tmp)
        ranges = _minmax(_prepared(onnx_model, tmp), tmp, arrays)
    return {"format": FORMAT, "method": "minmax", "ranges": dict(sorted(ranges.items()))}


def crops(images: Iterable[np.ndarray], n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` square crops of at most ``size`` (a multiple of 32, clipped to the image), taken
    in turn from ``images`` at places a seeded generator draws: the same images, the same
    crops."""
    images = [check_crop(im) for im in images]
    if not images:
        raise AerialSegError("no calibration images")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = images[i % len(images)]
        side = max(32, min(size, *im.shape[:2]) // 32 * 32)
        y = int(rng.integers(0, im.shape[0] - side + 1))
        x = int(rng.integers(0, im.shape[1] - side + 1))
        out.append(im[y : y + side, x : x + side])
    return out


def calibrate_checkpoint(model: str | Path, images: Iterable[np.ndarray], n: int, size: int):
    """Measure the ranges of checkpoint ``model`` over ``n`` crops of ``images`` and write its
    sidecar; returns the sidecar's path."""
    from ..models.checkpoint import load_checkpoint
    from ..models.export import onnx_bytes

    net, classes, meta = load_checkpoint(model)
    meta.setdefault("name", Path(model).stem)
    calibration = calibrate(onnx_bytes(net, classes, meta), crops(images, n, size))
    calibration.update(crops=n, crop_size=size)
    return write_ranges(model, calibration)


def check_crop(im: np.ndarray) -> np.ndarray:
    if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
        raise AerialSegError(f"calibration images must be (H, W, 3) uint8, not {np.shape(im)}")
    if min(im.shape[:2]) < 32:
        raise AerialSegError(f"calibration images need sides >= 32, not {im.shape[:2]}")
    return im


def quantize(
    onnx_model: bytes, calibration: dict, source: str = "the int8 ranges", float_nodes=None
) -> bytes:
    """The int8 QDQ model built from ``onnx_model`` and stored ranges (no images needed).
    ``source`` names the ranges in errors (their file). ``float_nodes``: the names of the
    nodes left in float (default :func:`.int8_graph.float_nodes`; for experiments)."""
    _ort()
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    ranges = check_calibration(calibration, source)
    with tempfile.TemporaryDirectory(prefix="aerialseg-int8-") as tmp:
        tmp = Path(tmp)
        model = _prepared(onnx_model, tmp)
        # the tensors this onnxruntime calibrates in this export must be the stored ones: a
        # range silently taken from the probe instead would quantise that tensor wrongly
        wanted = set(_minmax(model, tmp, [_PROBE]))
        if wanted != set(ranges):
            missing = sorted(wanted - set(ranges))
            raise AerialSegError(
                f"{source}: made for another export of this model ({len(missing)} tensors "
                f"without a range, e.g. {missing[:1]}); recalibrate it"
            )
        graph = onnx.load(model, load_external_data=False)
        derived = int8_graph.upsampling_by_phases(graph)  # its new tensors: ranges it names
        ranges.update({new: ranges[old] for new, old in derived.items()})
        if float_nodes is None:
            float_nodes = int8_graph.float_nodes(graph)
        onnx.save(graph, model)
        # float32, as the calibrator's own ranges are (the quantizer reads their dtype)
        overrides = {
            k: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for k, (lo, hi) in ranges.items()
        }
        out = tmp / "int8.onnx"
        with _quiet():
            quantize_static(
                str(model),
                str(out),
                _Feed([_PROBE]),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(float_nodes),
                extra_options={"TensorQuantOverrides": overrides},
            )
        return out.read_bytes()


def check_calibration(calibration: dict, source: str) -> dict[str, tuple[float, float]]:
    """The ranges of a sidecar's content, or one line saying what is wrong with it."""
    if not isinstance(calibration, dict) or not isinstance(calibration.get("format"), int):
        raise AerialSegError(f"{source}: not aerialseg int8 ranges (format {FORMAT})")
    if calibration["format"] != FORMAT:
        raise AerialSegError(
            f"{source}: int8 ranges of format {calibration['format']}, this aerialseg reads "
            f"format {FORMAT}; recalibrate with `aerialseg calibrate-int8`"
        )
    ranges = calibration.get("ranges")
    if not isinstance(ranges, dict) or not ranges:
        raise AerialSegError(f"{source}: no ranges")
    out = {}
    for name, pair in ranges.items():
        ok = isinstance(pair, list) and len(pair) == 2
        if not ok or not all(isinstance(v, (int, float)) for v in pair) or pair[0] > pair[1]:
            raise AerialSegError(f"{source}: bad range for {name!r}: {pair!r}")
        out[name] = (float(pair[0]), float(pair[1]))
    return out


def read_ranges(model: str | Path) -> tuple[dict, str]:
    """(the sidecar's content, its path) for checkpoint ``model``; one line if it has none."""
    path = ranges_path(model)
    if not path.is_file():
        raise AerialSegError(
            f"{model}: no int8 ranges ({path.name} next to it); make them with "
            f"`aerialseg calibrate-int8 --model {model} IMAGES_OR_FOLDER` (images like its "
            "training data)"
        )
    try:
        return json.loads(path.read_text()), str(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AerialSegError(f"{path}: unreadable int8 ranges ({e})") from None


def write_ranges(model: str | Path, calibration: dict) -> Path:
    """The sidecar of checkpoint ``model``, written whole or not at all."""
    path = ranges_path(model)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(calibration, indent=1, sort_keys=True) + "\n")
    return path


def load_int8(path: str | Path, threads=None):
    """Checkpoint ``path`` quantised to int8 from its ranges sidecar (:func:`read_ranges`),
    run by onnxruntime: (the model, its classes, its metadata), as
    :func:`~aerialseg.inference.onnx_model.load_onnx` gives them for a Segmenter. The int8
    model is cached on disk (:func:`cache_dir`): building it is an ONNX export, 15-25 s."""
    from ..classes import ClassTable
    from ..models.checkpoint import load_checkpoint
    from ..models.export import onnx_bytes
    from .onnx_model import OnnxModel

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise AerialSegError(f"{path}: int8 is built from a checkpoint (.safetensors), not ONNX")
    if not path.is_file():
        raise AerialSegError(f"{path}: no such model file")
    _ort()
    calibration, source = read_ranges(path)
    check_calibration(calibration, source)  # a bad sidecar is one line before any build
    cached = _cache_path(path, calibration)
    model = _from_cache(cached, threads) if cached else None
    if model is None:
        # the one slow step (an ONNX export and quantisation), once per model: say so
        print(f"building the int8 model of {path.name} (once; kept in {cache_dir()})",
              file=sys.stderr, flush=True)  # fmt: skip
        net, classes, meta = load_checkpoint(path)
        meta.setdefault("name", path.stem)
        built = quantize(onnx_bytes(net, classes, meta), calibration, source)
        model = OnnxModel(built, threads)
        if cached:
            _to_cache(cached, built)
    meta = {**model.meta, "precision": "int8"}
    return model, ClassTable.from_dict(meta["classes"]), meta


# Bump when quantize() builds another model from the same checkpoint and ranges.
CACHE_FORMAT = 2  # 2: float_nodes' hand-over and outer nodes, upsampling_by_phases


def cache_dir() -> Path:
    """Where built int8 models are kept: ``$XDG_CACHE_HOME/aerialseg`` or ``~/.cache/aerialseg``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aerialseg"


def _cache_path(checkpoint: Path, calibration: dict) -> Path | None:
    """The cache file of the model built from ``checkpoint`` and ``calibration``, named by
    what it depends on: the checkpoint's bytes, the ranges, onnxruntime's quantizer (its
    version) and how this module builds (:data:`CACHE_FORMAT`). None where there is no home
    to cache in."""
    import onnxruntime

    try:
        h = hashlib.sha256(checkpoint.read_bytes())
        folder = cache_dir()
    except (OSError, RuntimeError):  # RuntimeError: Path.home() without a home
        return None
    h.update(json.dumps(calibration, sort_keys=True).encode())
    h.update(f"onnxruntime {onnxruntime.__version__}, format {CACHE_FORMAT}".encode())
    return folder / f"int8-{h.hexdigest()[:40]}.onnx"


def _from_cache(path: Path, threads):
    """The cached model, or None if there is none or it is not whole (its first 32 bytes are
    the sha256 of the rest): then it is rebuilt, never an error."""
    from .onnx_model import OnnxModel

    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data[32:]).digest() != data[:32]:
        return None
    try:
        return OnnxModel(data[32:], threads)
    except AerialSegError:
        return None


def _to_cache(path: Path, model: bytes) -> None:
    """Keep ``model`` for the next load, written whole or not at all; a cache that cannot be
    written (read-only home, full disk) only costs the next load its build."""
    try:
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(hashlib.sha256(model).digest() + model)
    except (AerialSegError, OSError) as e:
        logging.getLogger(__name__).debug("int8 cache not written: %s", e)
