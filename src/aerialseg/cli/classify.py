"""``aerialseg classify train|evaluate|predict`` and ``aerialseg baseline``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..config import DATA_ENV, data_root
from ..errors import AerialSegError


def cmd_classify_train(args) -> int:
    from ..config import ClassifyConfig
    from ..training.classification import train_classifier

    if args.minutes is not None and args.epochs is not None:
        raise AerialSegError("give --epochs or --minutes, not both")
    flags = {k: getattr(args, k) for k in ClassifyConfig.__dataclass_fields__ if hasattr(args, k)}
    flags = {k: v for k, v in flags.items() if v is not None}
    flags["data"] = data_root(args.data)
    if args.minutes is not None:
        flags["epochs"] = 0
    cfg = ClassifyConfig(**flags)
    result = train_classifier(cfg, args.out, progress=not args.quiet)
    best = result["best"]
    print(
        f"best epoch {int(best['epoch'])}: val accuracy {best['val_accuracy']:.4f}, "
        f"balanced {best['val_balanced_accuracy']:.4f}"
    )
    print(f"run folder: {args.out} (best.safetensors, history.csv, curves.png, confusion.png)")
    return 0


def cmd_classify_evaluate(args) -> int:
    from ..data.classification import load_data
    from ..inference.classifier import evaluate_classifier, load_classifier
    from ..training.classification import confusion_png

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
        confusion_png(result["confusion_matrix"], classes, args.confusion)
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


def cmd_classify_predict(args) -> int:
    from tqdm import tqdm

    from ..data.imageset import fit_square
    from ..inference.classifier import load_classifier, predict_proba, top_k
    from ..io.images import collect_images, read_image

    model, classes, _ = load_classifier(args.model)
    images, failures = collect_images(args.inputs)
    if not images and not failures:
        raise AerialSegError(f"no images found in {' '.join(args.inputs)}")
    if args.patches and not args.out:
        raise AerialSegError("--patches writes maps: give --out DIR")
    rows = []
    for path, name in tqdm(images, unit="img", desc="classifying", disable=args.quiet or None):
        try:
            rgb = read_image(path)
            if args.patches:
                _write_patch_map(model, classes, rgb, path, name, args)
                continue
            probs = predict_proba(model, fit_square(rgb, model.input_size)[None])
            rows.append({"image": str(path), "top": top_k(probs, classes, args.top)[0]})
        except AerialSegError as e:
            failures.append(str(e))
    for r in rows:
        if args.json:
            print(json.dumps({"image": r["image"], "top": [[n, p] for n, p in r["top"]]}))
        else:
            print(f"{r['image']}: " + ", ".join(f"{n} {p:.3f}" for n, p in r["top"]))
    if args.patches:
        print(f"patch maps of {len(images) - len(failures)} images -> {args.out}/")
    if failures:
        print(f"aerialseg: {len(failures)} failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def _write_patch_map(model, classes, rgb, path, name, args) -> None:
    from ..inference.classifier import patch_map
    from ..inference.outputs import check_free, output_paths, write_outputs

    paths = output_paths(Path(args.out), name)
    check_free(paths, args.overwrite)
    labels = patch_map(model, rgb)
    write_outputs(paths, rgb, labels, classes, str(path), extra={"model": args.model})


def cmd_baseline(args) -> int:
    from ..baselines import run_baseline

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
    from ..inference.evaluate import format_table

    print(format_table(result))
    print(
        f"{args.method}: trained in {result['train_seconds']:.1f}s on "
        f"{result['train_pixels']:,} pixels; predicts "
        f"{result['predict_seconds_per_megapixel']:.2f}s per megapixel"
    )
    return 0


def add_parsers(sub) -> None:
    """Add ``classify`` (train/evaluate/predict) and ``baseline`` to the aerialseg command."""
    c = sub.add_parser(
        "classify",
        help="image classifiers (the ISLR2 CNN) on CIFAR-100, image folders or aerial patches",
        description="Train, evaluate and use a CNN image classifier.",
    )
    csub = c.add_subparsers(dest="classify_command", required=True)

    t = csub.add_parser(
        "train",
        help="train a classifier",
        description="Train the ISLR2 CNN (or the seed's variant); writes checkpoints, "
        "history.csv, curves.png and confusion.png into the run folder.",
    )
    t.add_argument(
        "--data",
        help=f"cifar-100-python/, an image folder, or a segmentation "
        f"dataset for land-cover patches (default: ${DATA_ENV})",
    )
    t.add_argument("--out", required=True, help="run folder to create")
    t.add_argument("--dataset", choices=["auto", "cifar100", "imagefolder", "landcover"])
    t.add_argument("--model", help="cnn-islr (default) or cnn-seed")
    t.add_argument("--base-filters", type=int, help="filters of the first block (32)")
    t.add_argument("--dropout", type=float, help="dropout before the dense layer")
    t.add_argument("--dense", type=int, help="units of the dense layer (512)")
    t.add_argument("--size", type=int, help="input side in pixels (default 32)")
    t.add_argument("--label", choices=["fine", "coarse"], help="CIFAR-100 label set")
    t.add_argument("--min-share", type=float, help="land cover: majority share (0.5)")
    t.add_argument("--stride", type=int, help="land cover: patch step (default: the size)")
    t.add_argument("--val-fraction", type=float, help="held-out share (0.2)")
    t.add_argument("--seed", type=int)
    t.add_argument("--limit", type=int, help="use at most N training images")
    t.add_argument("--normalization", choices=["scale", "meanstd"])
    t.add_argument("--augment", action="store_true", default=None, help="random flips/rotations")
    t.add_argument("--epochs", type=int, help="default 30")
    t.add_argument("--minutes", type=float, help="train for this long instead")
    t.add_argument("--batch-size", type=int, help="default 128")
    t.add_argument("--lr", type=float, help="RMSprop learning rate (1e-3)")
    t.add_argument("--threads", type=int, help="torch threads")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_classify_train)

    e = csub.add_parser("evaluate", help="accuracy, per-class accuracy, confusion matrix")
    e.add_argument("--model", required=True, help="classifier checkpoint")
    e.add_argument("--data", help="data folder (default: the one it was trained on)")
    e.add_argument(
        "--split",
        choices=["val", "test", "all"],
        help="held-out validation images, the test set (CIFAR, train/+test/ folders) or all",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--confusion", metavar="PNG", help="write a confusion-matrix picture")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_classify_evaluate)

    p = csub.add_parser("predict", help="classify images")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--model", required=True, help="classifier checkpoint")
    p.add_argument("--top", type=int, default=3, help="classes to show per image")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument(
        "--patches",
        action="store_true",
        help="classify every model-sized patch of large images and write maps like segment",
    )
    p.add_argument("--out", help="folder for --patches maps")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_classify_predict)

    b = sub.add_parser(
        "baseline",
        help="classic per-pixel baselines (KMeans, SVM, random forest)",
        description="Train a classic per-pixel model on the training images and score it on "
        "the held-out images with the metrics of `aerialseg evaluate`.",
    )
    b.add_argument("--method", required=True, choices=["kmeans", "svm", "random-forest"])
    b.add_argument("--data", help=f"dataset root (default: ${DATA_ENV})")
    b.add_argument("--val-fraction", type=float, default=0.2, help="as aerialseg train (0.2)")
    b.add_argument("--seed", type=int, default=0, help="split and sampling seed (0)")
    b.add_argument(
        "--train-pixels", type=int, default=None, help="training pixels sampled (method default)"
    )
    b.add_argument("--clusters", type=int, help="kmeans: clusters (default: one per class)")
    b.add_argument("--out", help="write mask/overlay/figure of every held-out image here")
    b.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--confusion", metavar="PNG", help="write a confusion-matrix picture")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_baseline)
