"""``aerialseg train``, ``evaluate`` and ``segment``: the segmentation commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..config import PRESETS, TrainConfig, data_root, resolve_config
from ..errors import AerialSegError
from ..inference.evaluate import SPLITS
from ..inference.tiling import Tiling
from ..io.images import MAX_PIXELS
from . import common, geo

VECTOR_FIELDS = ("labels", "class_field", "layer", "line_width")  # common.add_vector_labels


def cmd_train(args) -> int:
    flags = common.flag_values(args, TrainConfig)
    if args.minutes is not None and args.epochs is not None:
        raise AerialSegError("give --epochs or --minutes, not both")
    out, base = common.run_folder(args)
    if base is None:
        flags.setdefault("data", data_root(required=False))
    cfg = resolve_config(args.preset, args.config, flags, base)
    common.check_vector_labels(cfg.labels, cfg.class_field, cfg.layer, cfg.line_width)
    if args.minutes is not None:
        cfg.epochs = 0
    if args.epochs is not None:  # e.g. extending a run that was limited by --minutes
        cfg.minutes = None
    if args.nproc:
        return _launch(args, cfg, out)
    from ..training import distributed
    from ..training.segmentation import train  # torch: only once the config is sound

    result = train(cfg, out, resume=bool(args.resume), progress=not args.quiet)
    if not distributed.reports():
        return 0  # under torchrun: rank 0 reports
    best = result["best"]
    print(
        f"best epoch {best['epoch']}: val accuracy {best['val_accuracy']:.4f}, "
        f"val mIoU {best['val_miou']:.4f}, val Jaccard {best['val_jaccard']:.4f}"
    )
    print(f"run folder: {out} (best.safetensors, history.csv, curves.png, examples.png)")
    return 0


def _launch(args, cfg: TrainConfig, out: Path) -> int:
    """``train --nproc N``: this command in N processes through torchrun, on this machine."""
    from ..training.distributed import check_gpus, launch, under_torchrun
    from ..training.loop import check_run_folder
    from ..training.segmentation import check_config

    if under_torchrun():
        raise AerialSegError("--nproc starts torchrun itself: under torchrun, leave it out")
    check_config(cfg)  # mistakes are found once, here, not once per process
    check_gpus(cfg.device, args.nproc)
    check_run_folder(out, bool(args.resume), cfg)
    argv, skip = [], False
    for a in args.argv:
        if not skip and a == "--nproc":
            skip = True
        elif skip:
            skip = False
        elif not a.startswith("--nproc="):
            argv.append(a)
    return launch(args.nproc, argv)


def cmd_evaluate(args) -> int:
    from ..data.segmentation import check_labelled, load_dataset, unknown_pixel_report
    from ..inference.evaluate import evaluate, format_table, images_to_score
    from ..inference.segmenter import load_segmenter

    data = data_root(args.data)
    table = common.class_table(args)  # how to read the reference masks: before the model
    vector = common.vector_options(args)  # the file, its layer and field: before the model
    if args.confusion:
        from ..io.files import check_writable_folder

        check_writable_folder(Path(args.confusion).parent, "--confusion")
    seg = load_segmenter(
        args.model, args.precision, device=args.device, scales=args.scales, classes=table
    )
    log = sys.stderr if args.json else sys.stdout
    files = None
    if vector:  # reference shapes: only the pixels inside them are scored
        from ..gis.vector_labels import vector_pairs, vector_samples

        samples = vector_samples(data, args.labels, seg.classes, vector, log=_printer(log))
        files = {p.id: p.image for p in vector_pairs(data, args.labels)}
    else:
        samples = load_dataset(data, seg.classes, progress=not args.quiet)
    samples, why = images_to_score(samples, seg.meta, data, args.split, files)
    check_labelled(samples, seg.classes, str(data))
    if vector:
        why += f"; only the pixels inside the shapes of {args.labels} count"
    print(why, file=log)
    note = unknown_pixel_report(samples)
    if note:
        print(note, file=sys.stderr)
    result = evaluate(seg, samples, tta=args.tta, progress=not args.quiet)
    result["split"] = args.split
    if args.confusion:
        from ..plots import confusion_matrix

        confusion_matrix(result["confusion_matrix"], seg.classes, args.confusion)
    if args.json:
        print(json.dumps(result))
        return 0
    print(format_table(result))
    if args.confusion:
        print(f"confusion matrix: {args.confusion}")
    return 0


def _printer(stream):
    return lambda line: print(line, file=stream)


def segment_options(args):
    """The :class:`~aerialseg.jobs.segment.SegmentOptions` of the command line, checked
    before anything slow starts."""
    import dataclasses

    from ..jobs.segment import SegmentOptions

    names = (f.name for f in dataclasses.fields(SegmentOptions))
    return SegmentOptions(**{k: getattr(args, k) for k in names})


def segmenter(args, tiling: Tiling, table=None):
    """The model of ``--model`` with the flags that say how it runs."""
    from ..inference.segmenter import load_segmenter

    return load_segmenter(
        args.model, args.precision, tiling, args.device, args.runtime, args.scales, table
    )


def cmd_segment(args) -> int:
    from ..io.files import check_writable_folder
    from ..io.images import collect_images

    tiling = Tiling(window=args.window, overlap=args.overlap, batch_size=args.batch_size)
    table = common.class_table(args)  # a legend the model cannot follow: before any output
    out = check_writable_folder(Path(args.out))
    options = segment_options(args)  # every option checked before anything slow
    skipped: list[str] = []
    images, failures = collect_images(args.inputs, skipped)
    if not images:
        if failures:
            raise AerialSegError("; ".join(failures))
        raise AerialSegError(f"no images found in {' '.join(args.inputs)}")
    # torch and the model only once the inputs are known to exist
    from tqdm import tqdm

    from ..io.outputs import display_name
    from ..jobs.segment import check_model_gsd, segment_file

    seg = segmenter(args, tiling, table)
    if args.input_gsd:
        check_model_gsd(seg)  # once, before any file
    for line in skipped:
        tqdm.write(f"aerialseg: note: {line}", file=sys.stderr)
    for f in failures:
        tqdm.write(f"aerialseg: error: {f}", file=sys.stderr)
    done, kept = 0, 0
    kinds: dict[str, None] = {}  # the kinds of file written (*_labels.png...), in order
    quiet = True if args.quiet else None  # None: tqdm shows bars only on a terminal
    for path, name in tqdm(images, unit="img", desc="segmenting", disable=quiet):
        bar = WindowBar(display_name(path.name), quiet)
        try:
            result = segment_file(seg, path, out, options, bar, name)
        except AerialSegError as e:
            failures.append(str(e))
            tqdm.write(f"aerialseg: error: {e}", file=sys.stderr)
            continue
        finally:
            bar.close()
        for note in result.notes:
            tqdm.write(f"aerialseg: note: {note}", file=sys.stderr)
        done, kept = done + (not result.skipped), kept + result.skipped
        if not result.skipped:
            kinds.update(_kinds(result.outputs, out / name))
        if result.warning:
            tqdm.write(f"{display_name(path)}: warning: {result.warning}", file=sys.stderr)
    written = f" ({', '.join(kinds)})" if kinds else ""
    print(
        f"segmented {done} image{'s' * (done != 1)} with {seg.name} in {seg.precision} "
        f"-> {display_name(out)}/" + written
    )
    if kept:
        print(
            f"kept the outputs of {kept} image{'s' * (kept != 1)} segmented by an earlier run "
            "(--overwrite redoes them)"
        )
    return common.report_failures(failures)


class WindowBar:
    """A file's progress bar of windows, made on its first report (when the total is
    known)."""

    def __init__(self, desc: str, quiet):
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, n: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="win", leave=False, desc=self.desc, disable=self.quiet)
            self.bar = bar
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _kinds(paths: dict[str, Path], stem: Path) -> dict[str, None]:
    """``*_labels.png``... for each file of one image's outputs (their names: stem + suffix)."""
    return {"*" + str(p)[len(str(stem)) :]: None for p in paths.values()}


def add_train(sub, help: str) -> None:
    t = common.subcommand(
        sub,
        "train",
        cmd_train,
        help,
        "Train a U-Net; writes checkpoints, history.csv, curves.png and examples.png into the "
        "run folder. Settings: defaults < --preset < --config FILE < flags.",
    )
    common.add_run_folder(t)
    t.add_argument("--config", metavar="FILE", help="JSON/YAML file of config values")
    t.add_argument("--preset", choices=sorted(PRESETS), help="named recipe (seed: the paper's)")
    common.add_quiet(t)
    t.add_argument(
        "--nproc",
        type=common.number(int, 1),
        metavar="N",
        help="train in N processes on this machine (DDP through torchrun: one per GPU, or "
        "CPU processes sharing the cores); --batch-size is per process",
    )
    common.add_config_flags(
        t, TrainConfig, "training config (also settable in --config FILE)", skip=VECTOR_FIELDS
    )
    common.add_vector_labels(
        t,
        "labels drawn in a GIS: a vector file of shapes over the images of --data (a "
        "folder of georeferenced images, or one with images/), instead of its masks/",
    )
    t.add_argument("--model", dest="arch", action=common.Deprecated, instead="--arch")


def add_evaluate(sub, help: str) -> None:
    e = common.subcommand(
        sub,
        "evaluate",
        cmd_evaluate,
        help,
        "Score a model on the whole images of a dataset: per-class IoU, user's and producer's "
        "accuracy, mIoU, pixel accuracy, Cohen's kappa. "
        "By default only images the model did not train on are scored (on its own training "
        "data: its validation images); the command says which it scored.",
    )
    common.add_model(e)
    common.add_data(e)
    e.add_argument(
        "--split",
        choices=SPLITS,
        default="auto",
        help="auto: images the model never trained on; val: its validation images; all: "
        "every image, training images included (default: auto)",
    )
    common.add_classes(e)
    common.add_vector_labels(
        e,
        "reference shapes drawn in a GIS: a vector file over the images of --data (a "
        "folder of georeferenced images, or one with images/); only the pixels inside the "
        "shapes are scored, as an accuracy assessment against reference polygons",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--confusion", metavar="PNG", help="write a confusion-matrix picture")
    e.add_argument("--tta", action="store_true", help="average the 8 flips/rotations")
    common.add_scales(e)
    common.add_precision(e, int8=True)
    common.add_device(e)
    common.add_quiet(e)


def add_segment(sub, help: str) -> None:
    g = common.subcommand(
        sub,
        "segment",
        cmd_segment,
        help,
        "Blended sliding-window segmentation of images of any size; writes label PNG, colour "
        "mask, overlay, figure and class statistics per image.",
    )
    g.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    g.add_argument(
        "--out", default="segmented", metavar="DIR", help="output folder (default: %(default)s)"
    )
    add_segment_options(g)


def add_segment_options(g) -> None:
    """What is segmented how, and which files are written: the flags ``segment`` and
    ``segment-batch`` share."""
    common.add_model(g)
    common.add_classes(g)
    g.add_argument("--tta", action="store_true", help="average the 8 flips/rotations")
    common.add_scales(g)
    g.add_argument(
        "--window",
        type=common.number(int, 32),
        default=Tiling.window,
        help="largest window side in pixels; windows are sized to the image (default: %(default)s)",
    )
    g.add_argument(
        "--overlap",
        type=common.number(float, 0, 0.5),
        default=Tiling.overlap,
        help="share of a window that neighbours overlap and blend, 0-0.5 (default: %(default)s)",
    )
    g.add_argument(
        "--batch-size",
        type=common.number(int, 1),
        default=Tiling.batch_size,
        help="windows per forward pass (default: %(default)s; on a CPU, bigger passes cost more "
        "per pixel)",
    )
    g.add_argument(
        "--opacity",
        type=common.number(float, 0, 1),
        default=0.5,
        help="overlay opacity, 0-1 (default: %(default)s)",
    )
    g.add_argument(
        "--gsd",
        type=common.number(float, 0, low_open=True),
        help="metres per pixel of the input, for areas in m^2 where the file gives none (a "
        "plain picture, a raster without a CRS); a raster's CRS wins, with a note",
    )
    g.add_argument(
        "--input-gsd",
        type=geo.input_gsd,
        metavar="M|auto",
        help="metres per pixel of the input: resample it to the resolution the model was "
        "trained at (recorded in the model); auto: from a georeferenced raster's CRS (its "
        "outputs are then on the model's grid)",
    )
    g.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write per-class probabilities (H, W, C) float16 .npy",
    )
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g.add_argument(
        "--max-pixels",
        type=common.number(int, 1),
        default=MAX_PIXELS,
        help="refuse larger images (default: %(default)s)",
    )
    geo.add_flags(g)
    common.add_precision(g, int8=True)
    common.add_device(g)
    g.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        help="torch (default) or onnx: the same windows through onnxruntime on the CPU (needs "
        "the onnx extra; a checkpoint is exported in memory first; default for a .onnx --model)",
    )
    common.add_quiet(g)


PARSERS = {"train": add_train, "evaluate": add_evaluate, "segment": add_segment}
