"""The ``gui`` and ``capture`` subcommands: the desktop app, and its capture step for scripts."""

from __future__ import annotations

import time


def cmd_gui(args) -> int:
    from ..app.window import run_app

    return run_app(args.model, args.tta, args.image, args.save_dir, args.autosave, args.verbose)


def cmd_capture(args) -> int:
    from ..app.capture import capture_region, parse_region
    from ..inference.outputs import save_result, stats_line, timestamped_stem
    from ..inference.segmenter import load_model

    region = parse_region(args.region)
    seg = load_model(args.model)  # first: a bad model should fail before anything is grabbed
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


def add_parsers(sub) -> None:
    g = sub.add_parser(
        "gui",
        help="desktop app: frame part of the screen (or open an image), see it segmented",
        description="Opens the desktop app. Capture hides the window; drag a rectangle over "
        "the screen (Esc or right-click cancels) and the region is segmented beside the "
        "screenshot. Keys: c capture, o open, s save, m model, t TTA. Image files can also be "
        "dropped on the window where the tkdnd Tcl extension is installed.",
    )
    g.add_argument("image", nargs="?", help="an image to segment at start")
    g.add_argument("--model", help="checkpoint (default: the bundled model)")
    g.add_argument("--tta", action="store_true", help="start with TTA (8 flips/rotations) on")
    g.add_argument("--save-dir", metavar="DIR", help="folder Save… offers first")
    g.add_argument(
        "--autosave",
        metavar="DIR",
        help="save every result into DIR as soon as it is shown (no dialog)",
    )
    g.add_argument(
        "-v", "--verbose", action="store_true", help="log each step with a timestamp to stdout"
    )
    g.set_defaults(func=cmd_gui)

    c = sub.add_parser(
        "capture",
        help="screenshot a screen region, segment it and save the results (no window)",
        description="Grabs X,Y,W,H (desktop pixels; the virtual screen on Windows, where "
        "monitors left of the main one have negative X: write --region=-1920,0,800,600) and "
        "writes input, mask, overlay, labels and statistics into --out.",
    )
    c.add_argument("--region", required=True, metavar="X,Y,W,H")
    c.add_argument("--out", required=True, metavar="DIR")
    c.add_argument("--model", help="checkpoint (default: the bundled model)")
    c.add_argument("--tta", action="store_true", help="average the 8 flips/rotations")
    c.set_defaults(func=cmd_capture)
