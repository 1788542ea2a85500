"""The ``aerialseg`` command. Every user mistake becomes one ``aerialseg: error: ...`` line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import AerialSegError

DATA_ENV = "AERIALSEG_DATA"


def _default_data() -> str | None:
    return os.environ.get(DATA_ENV)


def cmd_train(args) -> int:
    from .config import TrainConfig, read_config_file, resolve_config
    from .train import train

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
        base, out = read_config_file(run / "config.json"), run
    else:
        if not args.out:
            raise AerialSegError("give --out RUN_DIR (or --resume RUN_DIR)")
        out = Path(args.out)
        if flags["data"] is None:
            flags["data"] = _default_data()
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
    from .checkpoint import load_checkpoint
    from .data import load_dataset, unknown_pixel_report
    from .evaluate import evaluate, format_table

    model, classes, meta = load_checkpoint(args.model)
    data = args.data or _default_data()
    if not data:
        raise AerialSegError(f"give --data DIR (or set {DATA_ENV})")
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
    result = evaluate(model, classes, samples, args.precision, progress=not args.quiet)
    if args.confusion:
        from .plots import confusion_matrix

        confusion_matrix(result["confusion_matrix"], classes, args.confusion)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
        if args.confusion:
            print(f"confusion matrix: {args.confusion}")
    return 0


def cmd_models(args) -> int:
    from .models import create_model, list_models

    for name in list_models():
        m = create_model(name)
        n = sum(p.numel() for p in m.parameters())
        print(f"{name:<12}{n / 1e6:6.2f}M params  {m.kwargs}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS, add_config_flags

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
    e.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    e.add_argument("--data", help=f"dataset root (default: ${DATA_ENV})")
    e.add_argument(
        "--split",
        choices=["all", "val"],
        default="all",
        help="all images, or only the model's held-out validation images",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--confusion", metavar="PNG", help="write a confusion-matrix picture")
    e.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_evaluate)

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
