"""The ``gui`` and ``capture`` subcommands: the desktop app, and its capture step for scripts."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import FinetuneConfig
from . import common


def cmd_gui(args) -> int:
    from ..app.window import run_app

    if args.corrections:
        from ..io.files import check_writable_folder

        check_writable_folder(Path(args.corrections), "--corrections")
    table = common.class_table(args, new_ok=True)  # new classes: painted, then learnt
    return run_app(
        args.model,
        args.tta,
        args.image,
        args.save_dir,
        args.autosave,
        args.verbose,
        args.device,
        classes=table,
        corrections_dir=args.corrections,
        minutes=args.improve_minutes,
        steps=args.improve_steps,
    )


def cmd_capture(args) -> int:
    from ..app.capture import capture_region, parse_region
    from ..inference.segmenter import load_segmenter
    from ..io.files import check_writable_folder
    from ..io.outputs import stats_line, timestamped_stem
    from ..jobs.save import save_result

    region = parse_region(args.region)
    check_writable_folder(Path(args.out))
    # first: a bad model or device should fail before anything is grabbed
    seg = load_segmenter(args.model, args.precision, device=args.device)
    rgb = capture_region(region)
    t = time.perf_counter()
    labels = seg.segment(rgb, tta=args.tta)
    seconds = time.perf_counter() - t
    extra = {"region": [region.x, region.y, region.w, region.h], "tta": args.tta}
    paths = save_result(
        args.out, timestamped_stem("capture"), rgb, labels, seg.classes, seg.name, extra
    )
    print(f"captured {region}, segmented with {seg.name} in {seconds:.2f} s")
    print(stats_line(paths["stats_json"]))
    for p in paths.values():
        print(p)
    return 0


def add_gui(sub, help: str) -> None:
    g = common.subcommand(
        sub,
        "gui",
        cmd_gui,
        help,
        "Opens the desktop app. Capture hides the window; drag a rectangle over the screen "
        "(Esc or right-click cancels) and the region is segmented beside the screenshot. Keys: "
        "c capture, o open, s save, m model, t TTA; r Correct mode (1-6 class, e erase, [ ] "
        "brush, Ctrl+Z/Ctrl+Y undo/redo), i Improve model, b before/after, Shift+S save model. "
        "Image files can also be dropped on the window where the tkdnd Tcl extension is "
        "installed. With --classes the maps, legend, statistics and painting follow your "
        "table, and Improve model teaches it: it must name every class of the model "
        "(background ones may be left out) and may add new ones, which you paint and Improve "
        "model learns (the legend says 'not learnt' until then).",
    )
    g.add_argument("image", nargs="?", help="an image to segment at start")
    common.add_model(g)
    common.add_classes(
        g, "; may add classes the model lacks: paint them, and Improve model learns them"
    )
    g.add_argument("--tta", action="store_true", help="start with TTA (8 flips/rotations) on")
    g.add_argument("--save-dir", metavar="DIR", help="folder Save… offers first")
    g.add_argument(
        "--autosave",
        metavar="DIR",
        help="save every result into DIR as soon as it is shown (no dialog)",
    )
    g.add_argument(
        "--corrections",
        metavar="DIR",
        help="folder where corrections are saved (DIR/images + DIR/labels, as finetune reads "
        "them); default: asked the first time they are needed",
    )
    defaults = FinetuneConfig()
    g.add_argument(
        "--improve-steps",
        type=common.number(int, low=1),
        metavar="N",
        help="steps Improve model fine-tunes (default: those of the recipe finetune picks)",
    )
    g.add_argument(
        "--improve-minutes",
        type=common.number(float, low=0, low_open=True),
        metavar="M",
        help="guard: Improve model stops after M minutes even with steps left, and says so "
        f"(default: finetune's, {defaults.minutes:g})",
    )
    g.add_argument(
        "-v", "--verbose", action="store_true", help="log each step with a timestamp to stdout"
    )
    common.add_device(g)


def add_capture(sub, help: str) -> None:
    c = common.subcommand(
        sub,
        "capture",
        cmd_capture,
        help,
        "Grabs X,Y,W,H (desktop pixels; the virtual screen on Windows, where monitors left of "
        "the main one have negative X: write --region=-1920,0,800,600) and writes input, mask, "
        "overlay, labels and statistics into --out.",
    )
    c.add_argument(
        "--region", required=True, metavar="X,Y,W,H", help="the screen rectangle to grab"
    )
    c.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    common.add_model(c)
    c.add_argument("--tta", action="store_true", help="average the 8 flips/rotations")
    common.add_precision(c, int8=True)
    common.add_device(c)


PARSERS = {"gui": add_gui, "capture": add_capture}
