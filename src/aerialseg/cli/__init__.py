"""The ``aerialseg`` command. Every user mistake becomes one ``aerialseg: error: ...`` line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..config import DATA_ENV, data_root
from ..errors import AerialSegError
from . import classify as classify_cli


def cmd_train(args) -> int:
    from ..config import TrainConfig, resolve_config
    from ..io.files import read_mapping
    from ..training.segmentation import train

    flags = {k: getattr(args, k) for k in TrainConfig.__dataclass_fields__}
    if args.minutes is not None and args.epochs is not None:
        raise AerialSegError("give --epochs or --minutes, not both")
    base = None
    if args.resume:
        run = Path(args.resume)
        if not (run / "config.json").is_file():
            raise AerialSegError(f"{run}: not a run folder (no config.json) - cannot resume")
        if args.out and Path(args.out) != run:
            raise AerialSegError("--resume continues RUN_DIR in place; drop --out")
        base, out = read_mapping(run / "config.json"), run
    else:
        if not args.out:
            raise AerialSegError("give --out RUN_DIR (or --resume RUN_DIR)")
        out = Path(args.out)
        if flags["data"] is None:
            flags["data"] = os.environ.get(DATA_ENV)
    cfg = resolve_config(args.preset, args.config, flags, base)
    if args.minutes is not None:
        cfg.epochs = 0
    result = train(cfg, out, resume=bool(args.resume), progress=not args.quiet)
    best = result["best"]
    print(
        f"best epoch {best['epoch']}: val accuracy {best['val_accuracy']:.4f}, "
        f"val mIoU {best['val_miou']:.4f}, val Jaccard {best['val_jaccard']:.4f}"
    )
    print(f"run folder: {out} (best.safetensors, history.csv, curves.png, examples.png)")
    return 0


def cmd_evaluate(args) -> int:
    from ..data.segmentation import load_dataset, unknown_pixel_report
    from ..inference.evaluate import evaluate, format_table
    from ..inference.segmenter import load_model

    seg = load_model(args.model, args.precision)
    classes, meta = seg.classes, seg.meta
    data = data_root(args.data)
    samples = load_dataset(data, classes, progress=not args.quiet)
    if args.split == "val":
        held = set(meta.get("val_images", []))
        if meta.get("split") == "random-patch":
            raise AerialSegError(
                "this model was trained on a random patch split: every image "
                "was partly seen in training, so there is no held-out image"
            )
        samples = [s for s in samples if s.id in held]
        if not samples:
            raise AerialSegError(f"none of the model's validation images are in {data}")
    note = unknown_pixel_report(samples)
    if note and not args.json:
        print(note, file=sys.stderr)
    result = evaluate(seg, samples, tta=args.tta, progress=not args.quiet)
    if args.confusion:
        from ..plots import confusion_matrix

        confusion_matrix(result["confusion_matrix"], classes, args.confusion)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
        if args.confusion:
            print(f"confusion matrix: {args.confusion}")
    return 0


def collect_images(inputs: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(image path, output name) for every file given or found under a folder given, and the
    inputs that do not exist. Under a folder, masks/ folders are skipped and the relative path
    becomes the output name, so 'Tile 1/images/a.jpg' and 'Tile 2/images/a.jpg' don't clash."""
    from ..io.images import IMAGE_SUFFIXES, natural_key

    found, missing = [], []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            files = [
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in IMAGE_SUFFIXES
                and "masks" not in f.parent.parts
                and not f.name.startswith(".")
            ]
            for f in sorted(files, key=lambda f: natural_key(str(f))):
                found.append((f, str(f.relative_to(p).with_suffix(""))))
        elif p.is_file():
            found.append((p, p.stem))
        else:
            missing.append(f"{p}: no such file or folder")
    return found, missing


def cmd_segment(args) -> int:
    from tqdm import tqdm

    from ..inference.outputs import check_free, output_paths, segment_to_files
    from ..inference.segmenter import load_model
    from ..inference.tiling import Tiling, count_windows
    from ..io.images import read_image, set_max_pixels

    if args.max_pixels:
        set_max_pixels(args.max_pixels)
    tiling = Tiling(window=args.window, overlap=args.overlap, batch_size=args.batch_size)
    seg = load_model(args.model, args.precision, tiling)
    images, failures = collect_images(args.inputs)
    if not images and not failures:
        raise AerialSegError(f"no images found in {' '.join(args.inputs)}")
    out = Path(args.out)
    done = 0
    bar = tqdm(images, unit="img", desc="segmenting", disable=None if not args.quiet else True)
    for path, name in bar:
        try:
            paths = output_paths(out, name, args.save_probabilities)
            check_free(paths, args.overwrite)
            rgb = read_image(path)
            h, w = rgb.shape[:2]
            with tqdm(
                total=count_windows(h, w, tiling),
                unit="win",
                leave=False,
                desc=path.name,
                disable=None if not args.quiet else True,
            ) as wbar:
                segment_to_files(
                    seg,
                    rgb,
                    paths,
                    str(path),
                    args.tta,
                    args.opacity,
                    args.gsd,
                    on_window=wbar.update,
                )
            done += 1
        except AerialSegError as e:
            failures.append(str(e))
            tqdm.write(f"aerialseg: error: {e}", file=sys.stderr)
    print(
        f"segmented {done} image{'s' * (done != 1)} with {seg.name} -> {out}/ "
        "(*_mask.png, *_overlay.jpg, *_figure.png, *_labels.png, *_stats.json/.csv)"
    )
    if failures:
        print(f"aerialseg: {len(failures)} failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def cmd_download(args) -> int:
    from ..io.download import download, extract_archive

    root = extract_archive(args.archive, args.out) if args.archive else download(args.out)
    print(f"dataset ready at {root}\nuse it with: export {DATA_ENV}={root.resolve()}")
    return 0


def cmd_models(args) -> int:
    from ..models import create_model, list_models, model_task

    for name in list_models(None):
        m = create_model(name)
        n = sum(p.numel() for p in m.parameters())
        print(f"{name:<12}{model_task(name):<16}{n / 1e6:6.2f}M params  {m.kwargs}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..config import PRESETS, add_config_flags
    from ..inference.tiling import Tiling
    from . import app as gui_cli

    p = argparse.ArgumentParser(prog="aerialseg", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train a segmentation model",
        description="Train a U-Net; writes checkpoints, history, curves and "
        "example predictions into the run folder.",
    )
    t.add_argument("--out", help="run folder to create")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    t.add_argument("--config", help="JSON/YAML file of config values")
    t.add_argument("--preset", choices=sorted(PRESETS), help="named recipe (seed = the paper's)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_config_flags(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a model on whole images")
    e.add_argument("--model", help="checkpoint (default: the bundled model)")
    e.add_argument("--data", help=f"dataset root (default: ${DATA_ENV})")
    e.add_argument(
        "--split",
        choices=["all", "val"],
        default="all",
        help="all images, or only the model's held-out validation images",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--confusion", metavar="PNG", help="write a confusion-matrix picture")
    e.add_argument("--tta", action="store_true", help="average the 8 flips/rotations")
    e.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_evaluate)

    g = sub.add_parser(
        "segment",
        help="segment images into land-cover maps",
        description="Blended sliding-window segmentation of images of any size; "
        "writes label PNG, colour mask, overlay, figure and class "
        "statistics per image.",
    )
    g.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    g.add_argument("--model", help="checkpoint (default: the bundled model)")
    g.add_argument("--out", default="segmented", help="output folder (default: segmented)")
    g.add_argument("--tta", action="store_true", help="average the 8 flips/rotations")
    g.add_argument("--window", type=int, default=Tiling.window, help="window side in pixels")
    g.add_argument(
        "--overlap",
        type=float,
        default=Tiling.overlap,
        help="share of a window that neighbours overlap and blend, 0-0.5",
    )
    g.add_argument(
        "--batch-size", type=int, default=Tiling.batch_size, help="windows per forward pass"
    )
    g.add_argument("--opacity", type=float, default=0.5, help="overlay opacity, 0-1")
    g.add_argument("--gsd", type=float, help="metres per pixel, for areas in m^2")
    g.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write per-class probabilities (H, W, C) float16 .npy",
    )
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g.add_argument("--max-pixels", type=int, help="refuse larger images (default 150M)")
    g.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    g.set_defaults(func=cmd_segment)

    d = sub.add_parser("download", help="get the Dubai dataset (Kaggle, or a downloaded zip)")
    d.add_argument("--out", default="data/dubai-aerial", help="where to put it")
    d.add_argument(
        "--from",
        dest="archive",
        metavar="ARCHIVE.zip",
        help="unpack an archive downloaded by hand instead of using kagglehub",
    )
    d.set_defaults(func=cmd_download)

    gui_cli.add_parsers(sub)
    classify_cli.add_parsers(sub)
    m = sub.add_parser("models", help="list the model names create_model knows")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AerialSegError as e:
        print(f"aerialseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aerialseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
