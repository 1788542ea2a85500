"""``aerialseg export``: a segmentation checkpoint as an ONNX or TorchScript file, or as a
checkpoint of half the size (float16 weights)."""

from __future__ import annotations

from pathlib import Path

from ..errors import AerialSegError
from . import common

FORMATS = ("onnx", "torchscript", "half")  # models.export.FORMATS + half, torch-free import
CHECK_SHAPE = (1, 3, 75, 113)  # odd sides: the check runs the model's padding too


def cmd_export(args) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise AerialSegError(f"{out}: is a folder; give the file to write")
    if out.exists() and not args.overwrite:
        raise AerialSegError(f"{out}: exists (--overwrite replaces it)")
    if not out.parent.is_dir():
        raise AerialSegError(f"{out.parent}: no such folder")
    if args.target and args.format != "onnx":
        raise AerialSegError(f"--target {args.target} is an ONNX model: use --format onnx")
    if args.target == "deepness":
        return export_deepness(args, out)
    import torch

    from ..inference.segmenter import DEFAULT_MODEL
    from ..models import export
    from ..models.checkpoint import load_checkpoint

    path = Path(args.model) if args.model else DEFAULT_MODEL
    model, classes, meta = load_checkpoint(path)
    meta.setdefault("name", path.stem)
    # a smooth random picture (pixel noise is full of near-ties between classes, which float16
    # weights flip on 2-3 % of pixels while real images agree on 99.95 %)
    coarse = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(0)) * 255
    x = torch.nn.functional.interpolate(coarse, CHECK_SHAPE[2:], mode="bilinear")
    with torch.inference_mode():
        expected = export.inference_copy(model)(x)
    if args.format == "onnx":
        from ..inference.onnx_model import OnnxModel

        export.save_onnx(out, model, classes, meta, args.opset)
        got = OnnxModel(out)(x)
        what = f"ONNX opset {args.opset}, dynamic batch/height/width, onnxruntime CPU"
    elif args.format == "half":
        from ..models.checkpoint import FORMAT, save_checkpoint

        own = ("format", "model", "classes", "name")  # rebuilt, or (name) the file's own stem
        extra = {k: v for k, v in meta.items() if k not in own}
        save_checkpoint(out, model, classes, half=True, **extra)
        with torch.inference_mode():
            got = export.inference_copy(load_checkpoint(out)[0])(x)
        what = f"{FORMAT} checkpoint, float16 weights"
    else:
        export.save_torchscript(out, model, classes, meta)
        module, _ = export.load_torchscript(out)
        with torch.inference_mode():
            got = module(x)
        what = "TorchScript (traced; torch.jit.load runs it)"
    diff = float((got - expected).abs().max())
    agree = float((got.argmax(1) == expected.argmax(1)).float().mean())
    print(f"exported {meta['name']} -> {out} ({what}, {out.stat().st_size / 1e6:.1f} MB)")
    print(
        f"check on a {CHECK_SHAPE[3]}x{CHECK_SHAPE[2]} image: max |logit difference| vs "
        f"PyTorch {diff:.2e}, labels equal {agree:.2%}"
    )
    # float16 weights round every weight: measured on real Dubai images 99.95 % of labels
    # stay equal, on this small check image 99.76 %; other formats compute in float32
    if agree < (0.995 if args.format == "half" else 0.999):
        out.unlink(missing_ok=True)  # nothing unfit is left behind under the asked-for name
        raise AerialSegError(f"{out}: the exported model disagrees with the original; not written")
    return 0


def export_deepness(args, out: Path) -> int:
    """``--target deepness``: the ONNX model the Deepness QGIS plugin loads (models.deepness),
    checked like every export: its probabilities on 0-1 input against the PyTorch model's
    softmax on 0-255 input, on a smooth random tile."""
    import numpy as np
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        raise AerialSegError(
            "ONNX export needs the onnx extra: pip install 'aerialseg[onnx]'"
        ) from None
    from ..inference.segmenter import DEFAULT_MODEL
    from ..models import deepness, export
    from ..models.checkpoint import load_checkpoint

    path = Path(args.model) if args.model else DEFAULT_MODEL
    model, classes, meta = load_checkpoint(path)
    meta.setdefault("name", path.stem)
    data = deepness.deepness_onnx_bytes(model, classes, meta, args.tile_size)
    t = args.tile_size
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255
    x = torch.nn.functional.interpolate(coarse, (t, t), mode="bilinear")
    with torch.inference_mode():
        expected = torch.softmax(export.inference_copy(model)(x), 1).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {export.INPUT: (x / 255).numpy()})[0]
    diff = float(np.abs(got - expected).max())
    agree = float((got.argmax(1) == expected.argmax(1)).mean())
    if agree < 0.999:
        raise AerialSegError(f"{out}: the exported model disagrees with the original; not written")
    export.write_bytes(out, data)
    what = f"opset {deepness.OPSET}, IR {deepness.IR_VERSION}, {t}x{t} tiles"
    res, mb = deepness.resolution_cm(meta), out.stat().st_size / 1e6
    print(
        f"exported {meta['name']} -> {out} (ONNX for Deepness: {what}, {res:g} cm/px, {mb:.1f} MB)"
    )
    print(f"check on a {t}x{t} tile: max |probability difference| vs PyTorch {diff:.2e}, "
          f"labels equal {agree:.2%}")  # fmt: skip
    return 0


def add_export(sub, help: str) -> None:
    e = common.subcommand(
        sub,
        "export",
        cmd_export,
        help,
        "Write a segmentation model as ONNX (dynamic height and width, for onnxruntime; "
        "`segment --runtime onnx --model FILE.onnx` runs it) or TorchScript; class table and "
        "normalisation travel in the file's metadata, batch norm is folded; or as a checkpoint "
        "with float16 weights (--format half: half the size, usable wherever a model is). The "
        "result is checked against the original on an odd-sized image.",
    )
    common.add_model(e)
    e.add_argument("--format", choices=FORMATS, default="onnx", help="(default: %(default)s)")
    e.add_argument("--out", required=True, metavar="FILE", help="file to write")
    e.add_argument(
        "--opset",
        type=common.number(int, 17, 23),
        default=18,
        help="ONNX opset (default: %(default)s, run fully by onnxruntime's CPU provider)",
    )
    e.add_argument(
        "--target",
        choices=("deepness",),
        help="deepness: an ONNX model for the Deepness QGIS plugin (fixed square tile of "
        "--tile-size, 0-1 RGB in, softmax probabilities out, its metadata: class names, "
        "resolution in cm/px, tile overlap); opset 17, IR 8",
    )
    e.add_argument(
        "--tile-size",
        type=common.number(int, 64, 2048),
        default=512,
        metavar="PX",
        help="--target deepness: the model's fixed input side, a multiple of 32 "
        "(default: %(default)s)",
    )
    e.add_argument("--overwrite", action="store_true", help="replace an existing file")


def cmd_calibrate_int8(args) -> int:
    from ..inference.int8 import calibrate_checkpoint
    from ..inference.segmenter import DEFAULT_MODEL
    from ..io.images import collect_images, read_image

    found, failures = collect_images(args.images)
    if failures:
        raise AerialSegError(failures[0])
    if not found:
        raise AerialSegError(f"no images found in {' '.join(args.images)}")
    model = Path(args.model) if args.model else DEFAULT_MODEL
    images = [read_image(path) for path, _ in sorted(found)]
    path = calibrate_checkpoint(model, images, args.crops, args.crop_size)
    print(f"int8 ranges of {model.name} from {args.crops} crops of {len(images)} images: {path}")
    return 0


def add_calibrate_int8(sub, help: str) -> None:
    c = common.subcommand(
        sub,
        "calibrate-int8",
        cmd_calibrate_int8,
        help,
        "Measure the activation ranges that --precision int8 quantises a checkpoint with, on "
        "crops of training-like images (never the images you evaluate on), and write them next "
        "to it as NAME.int8.json; the same images give the same file.",
    )
    common.add_model(c)
    c.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    c.add_argument(
        "--crops",
        type=common.number(int, 1),
        default=32,
        metavar="N",
        help="crops drawn over the images (seeded: the same every run) (default: %(default)s)",
    )
    c.add_argument(
        "--crop-size",
        type=common.number(int, 32),
        default=256,
        metavar="PX",
        help="side of the square crops (default: %(default)s)",
    )


PARSERS = {"export": add_export, "calibrate-int8": add_calibrate_int8}
