"""``aerialseg finetune``: teach a model the user's corrections (sparse labels) in minutes."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import FinetuneConfig, resolve_config
from ..errors import AerialSegError
from . import common


def cmd_finetune(args) -> int:
    flags = common.flag_values(args, FinetuneConfig)
    flags.update(precision=args.precision, device=args.device)
    cfg = resolve_config(None, None, flags, cls=FinetuneConfig)  # mistakes before any loading
    out = Path(args.out)
    if out.suffix.lower() != ".safetensors":
        raise AerialSegError(f"{out}: the new model must be a .safetensors file")
    from ..inference.segmenter import DEFAULT_MODEL
    from ..io.files import check_writable_folder

    parent = Path(args.model) if args.model else DEFAULT_MODEL
    if out.exists():
        if parent.exists() and os.path.samefile(out, parent):
            raise AerialSegError(f"{out}: is the model being fine-tuned; pick another --out")
        if not args.overwrite:
            raise AerialSegError(f"{out}: exists (pick another name, or --overwrite)")
        if out.is_dir():
            raise AerialSegError(f"{out}: is a folder, not a model file")
    check_writable_folder(out.parent, "--out")
    if args.data_replay and not Path(args.data_replay).is_dir():
        raise AerialSegError(f"{args.data_replay}: no such folder (--data-replay)")
    vector = common.vector_options(args, folders=True)  # a vector file: its layer and field
    table = common.class_table(args, teach=True)  # new classes welcome: they are learnt
    from ..training.finetune import finetune  # torch: only once the arguments are sound

    finetune(
        parent,
        args.images,
        args.labels,
        out,
        cfg,
        args.data_replay,
        not args.quiet,
        vector=vector,
        classes=table,
    )
    return 0


def add_finetune(sub, help: str) -> None:
    f = common.subcommand(
        sub,
        "finetune",
        cmd_finetune,
        help,
        "Fine-tune a segmentation model on the labelled pixels of a few images, in a bounded "
        "time. Label images (paired with the images by file name) may be partial: class "
        "indices in a single-band PNG/GeoTIFF with 255 = unlabelled, or a colour mask whose "
        "unpainted pixels have a colour that is no class. The new model records its parent, "
        "the images and the number of labelled pixels.",
    )
    common.add_model(f)
    common.add_classes(f)
    f.add_argument("--images", required=True, metavar="DIR", help="the images")
    f.add_argument(
        "--labels",
        required=True,
        metavar="DIR|FILE",
        help="their (partial) labels: a folder of label images, or a vector file of shapes "
        "(.gpkg, .geojson, .shp...) over georeferenced images",
    )
    f.add_argument("--out", required=True, metavar="NEW.safetensors", help="the new model")
    f.add_argument(
        "--data-replay",
        metavar="DIR",
        help="original training data (a dataset root): replay crops of it against forgetting",
    )
    f.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    common.add_vector_labels(f)
    common.add_precision(f)
    common.add_device(f)
    common.add_quiet(f)
    common.add_config_flags(f, FinetuneConfig, "fine-tuning settings", skip=("precision", "device"))


PARSERS = {"finetune": add_finetune}
