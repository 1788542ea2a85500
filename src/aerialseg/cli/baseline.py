"""``aerialseg baseline``: classic per-pixel models scored like the U-Net."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..baselines import METHODS
from ..config import data_root
from . import common


def cmd_baseline(args) -> int:
    from ..baselines import run_baseline
    from ..inference.evaluate import format_table
    from ..io.files import check_writable_folder

    if args.out:
        check_writable_folder(Path(args.out))
    if args.confusion:
        check_writable_folder(Path(args.confusion).parent, "--confusion")
    result = run_baseline(
        method=args.method,
        data=data_root(args.data),
        val_fraction=args.val_fraction,
        seed=args.seed,
        max_pixels=args.train_pixels,
        clusters=args.clusters,
        out=args.out,
        confusion=args.confusion,
        progress=not args.quiet,
        overwrite=args.overwrite,
        log=lambda line: print(line, file=sys.stderr if args.json else sys.stdout),
    )
    if args.json:
        print(json.dumps(result))
        return 0
    print(format_table(result))
    print(
        f"{args.method}: trained in {result['train_seconds']:.1f}s on "
        f"{result['train_pixels']:,} pixels; predicts "
        f"{result['predict_seconds_per_megapixel']:.2f}s per megapixel"
    )
    return 0


def add_baseline(sub, help: str) -> None:
    b = common.subcommand(
        sub,
        "baseline",
        cmd_baseline,
        help,
        "Train a classic per-pixel model on the training images and score it on the held-out "
        "images with the metrics of `aerialseg evaluate`.",
    )
    b.add_argument("--method", required=True, choices=METHODS, help="the per-pixel model")
    common.add_data(b)
    b.add_argument(
        "--val-fraction",
        type=common.number(float, 0, 1, low_open=True),
        default=0.2,
        help="share of each tile's images held out, as in train (default: %(default)s)",
    )
    b.add_argument(
        "--seed", type=int, default=0, help="split and sampling seed (default: %(default)s)"
    )
    b.add_argument(
        "--train-pixels",
        type=common.number(int, 1),
        help="training pixels sampled (default: the method's)",
    )
    b.add_argument(
        "--clusters", type=common.number(int, 2), help="kmeans: clusters (default: one per class)"
    )
    b.add_argument("--out", metavar="DIR", help="write the outputs of every held-out image here")
    b.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--confusion", metavar="PNG", help="write a confusion-matrix picture")
    common.add_quiet(b)


PARSERS = {"baseline": add_baseline}
