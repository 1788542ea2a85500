"""``aerialseg classify train|evaluate|predict``: the CNN image classifier."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..config import ClassifyConfig, data_root, resolve_config
from ..errors import AerialSegError
from ..io.files import check_writable_folder
from . import common

# `classify evaluate --split`; defined here: the classifier module imports torch, and the
# parser (`-h`, the docs' command reference) must not
SPLITS = ("val", "test", "all")


def cmd_train(args) -> int:
    from ..training import distributed
    from ..training.classification import train_classifier

    if args.minutes is not None and args.epochs is not None:
        raise AerialSegError("give --epochs or --minutes, not both")
    flags = common.flag_values(args, ClassifyConfig)
    out, base = common.run_folder(args)
    if base is None:
        flags["data"] = data_root(args.data)
    if args.minutes is not None:
        flags["epochs"] = 0
    cfg = resolve_config(None, None, flags, base, ClassifyConfig)
    if args.epochs is not None:  # e.g. extending a run that was limited by --minutes
        cfg.minutes = None
    result = train_classifier(cfg, out, progress=not args.quiet, resume=bool(args.resume))
    if not distributed.reports():
        return 0  # under torchrun: rank 0 reports
    best = result["best"]
    print(
        f"best epoch {int(best['epoch'])}: val accuracy {best['val_accuracy']:.4f}, "
        f"balanced {best['val_balanced_accuracy']:.4f}"
    )
    print(f"run folder: {out} (best.safetensors, history.csv, curves.png, confusion.png)")
    return 0


def cmd_evaluate(args) -> int:
    from ..data.classification import load_data
    from ..inference.classifier import evaluate_classifier, load_classifier
    from ..plots import confusion_matrix

    if args.confusion:
        check_writable_folder(Path(args.confusion).parent, "--confusion")
    model, classes, meta = load_classifier(args.model)
    ds = dict(meta["dataset"])
    if args.data:
        ds["root"] = str(Path(args.data).resolve())
    split = args.split or ("test" if ds["kind"] == "cifar100" else "val")
    data = load_data(ds, (split,), progress=not args.quiet)[split]
    if tuple(data.classes.names) != tuple(classes.names):
        raise AerialSegError(
            f"the data's classes {list(data.classes.names)} differ from the model's "
            f"{list(classes.names)}"
        )
    result = evaluate_classifier(model, data)
    result["split"] = split
    if args.confusion:
        confusion_matrix(result["confusion_matrix"], classes, args.confusion)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'class':<22}{'accuracy':>9}{'images':>8}")
    for (name, acc), row in zip(result["per_class_accuracy"].items(), result["confusion_matrix"]):
        print(f"{name:<22}{'-' if acc is None else f'{acc:.4f}':>9}{sum(row):>8}")
    print(
        f"\naccuracy {result['accuracy']:.4f}, balanced accuracy "
        f"{result['balanced_accuracy']:.4f} on {result['images']} {split} images"
    )
    if args.confusion:
        print(f"confusion matrix: {args.confusion}")
    return 0


def cmd_predict(args) -> int:
    from tqdm import tqdm

    from ..data.imageset import fit_square
    from ..inference.classifier import load_classifier, patch_map, predict_proba, top_k
    from ..io.images import collect_images, read_image
    from ..io.outputs import check_free, display_name, output_paths, write_outputs

    if args.patches and not args.out:
        raise AerialSegError("--patches writes maps: give --out DIR")
    if args.patches:
        check_writable_folder(Path(args.out))
    images, failures = collect_images(args.inputs)
    if not images:
        if failures:
            raise AerialSegError("; ".join(failures))
        raise AerialSegError(f"no images found in {' '.join(args.inputs)}")
    model, classes, _ = load_classifier(args.model)
    for f in failures:
        tqdm.write(f"aerialseg: error: {f}", file=sys.stderr)
    rows = []
    for path, name in tqdm(images, unit="img", desc="classifying", disable=args.quiet or None):
        try:
            if args.patches:  # the classifier as a coarse segmenter, written like `segment`
                paths = output_paths(Path(args.out), name)
                if not check_free(paths, args.overwrite, source=str(path)):
                    continue  # done by an earlier run
            rgb = read_image(path)
            if args.patches:
                labels = patch_map(model, rgb)
                write_outputs(paths, rgb, labels, classes, str(path), extra={"model": args.model})
                continue
            probs = predict_proba(model, fit_square(rgb, model.input_size)[None])
            rows.append({"image": str(path), "top": top_k(probs, classes, args.top)[0]})
        except AerialSegError as e:
            failures.append(str(e))
            tqdm.write(f"aerialseg: error: {e}", file=sys.stderr)
    for r in rows:
        if args.json:
            print(json.dumps({"image": r["image"], "top": [[n, p] for n, p in r["top"]]}))
        else:
            name = display_name(r["image"])  # printable even if the name is not UTF-8
            print(f"{name}: " + ", ".join(f"{n} {p:.3f}" for n, p in r["top"]))
    if args.patches:
        print(f"patch maps of {len(images) - len(failures)} images -> {args.out}/")
    return common.report_failures(failures)


def add_classify(sub, help: str) -> None:
    c = common.subcommand(
        sub, "classify", None, help, "Train, evaluate and use a CNN image classifier."
    )
    csub = c.add_subparsers(dest="classify_command", required=True, metavar="COMMAND")

    t = common.subcommand(
        csub,
        "train",
        cmd_train,
        "train a classifier",
        "Train the ISLR2 CNN (or the seed's variant); writes checkpoints, history.csv, "
        "curves.png and confusion.png into the run folder.",
    )
    common.add_run_folder(t)
    common.add_quiet(t)
    common.add_config_flags(t, ClassifyConfig, "classifier config")
    t.add_argument("--model", dest="arch", action=common.Deprecated, instead="--arch")

    e = common.subcommand(
        csub,
        "evaluate",
        cmd_evaluate,
        "accuracy, per-class accuracy, confusion matrix",
        "Score a classifier on its held-out images (CIFAR: the test set).",
    )
    common.add_model(e, required=True)
    e.add_argument("--data", metavar="DIR", help="data folder (default: the one it trained on)")
    e.add_argument(
        "--split",
        choices=SPLITS,
        help="val: held-out validation images (default); test: the test set (CIFAR, "
        "train/+test/ folders; the default for CIFAR); all: everything",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--confusion", metavar="PNG", help="write a confusion-matrix picture")
    common.add_quiet(e)

    p = common.subcommand(
        csub,
        "predict",
        cmd_predict,
        "classify images",
        "Print the top classes of each image, or with --patches write a map of every "
        "model-sized patch of large images, like `segment`.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    common.add_model(p, required=True)
    p.add_argument("--top", type=common.number(int, 1), default=3, help="classes to show per image")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument(
        "--patches",
        action="store_true",
        help="classify every model-sized patch of large images and write maps like segment",
    )
    p.add_argument("--out", metavar="DIR", help="folder for --patches maps")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    common.add_quiet(p)


PARSERS = {"classify": add_classify}
