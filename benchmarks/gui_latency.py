"""Desktop app: time from mouse release to result shown, for a 1024 x 768 screen region.

Runs the real app (``aerialseg gui -v``) on a private Xvfb screen showing a Dubai aerial image,
drives it with xdotool (c, then drag 1024 x 768), and reads the app's timestamped log. Two
figures per capture, both on the machine-wide monotonic clock:

* in-app: from the app's ButtonRelease handler to the result drawn (update_idletasks done);
* end to end: from just before xdotool sends the mouse release to the app's "result shown".

And how long the window could not react (the longest gap in its 20-ms event-loop poll, as the
app logs it per job): while each capture was segmented, and while the model loaded at start-up.

    python benchmarks/gui_latency.py [--model PATH] [--rounds 5] [--screenshot docs/gui.png]

Figure: the desktop app's capture-to-result time and event-loop stalls, quoted in
docs/results.md (desktop app) and docs/tutorials/app.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageGrab

from aerialseg.app.virtual_screen import VirtualScreen, missing_tools
from aerialseg.config import data_root

SCREEN = (1600, 1000)
REGION = (1024, 768)
START = (300, 150)  # top left of the dragged rectangle


# Held out from the bundled model's training (runs/full/split.json), and big enough to fill
# the screen: buildings, roads, a stadium, villas and desert.
IMAGE = "Tile 7/images/image_part_003.jpg"


def aerial_screen(name: str, path: Path) -> None:
    """A screen-sized crop of a real aerial image, in a temporary PNG (never committed)."""
    root = data_root(required=False)
    src = Path(root or ".") / name
    if not root or not src.is_file():
        sys.exit(f"{src} not found (set AERIALSEG_DATA or pass --image)")
    im = Image.open(src).convert("RGB")
    if im.width < SCREEN[0] or im.height < SCREEN[1]:
        sys.exit(f"{src} is smaller than the {SCREEN[0]}x{SCREEN[1]} screen")
    im.crop((0, 0, *SCREEN)).save(path)


def cpu_busy_seconds() -> float:
    """CPU time spent by everything on the machine so far (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system time of a live process and its waited-for children."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in stat[11:15]) / os.sysconf("SC_CLK_TCK")


def fields_of(message: str) -> dict[str, str]:
    """The key=value fields of one of the app's log lines."""
    return dict(f.split("=", 1) for f in message.split() if "=" in f)


def wait_viewable(screen: VirtualScreen, timeout: float = 60) -> float:
    """When the app's window became viewable (mapped), polled every 10 ms with xdotool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--class", "aerialseg"],
            env=screen.env,
            capture_output=True,
        )
        if found.stdout.strip():
            return time.monotonic()
        time.sleep(0.01)
    sys.exit("the app's window never appeared")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the bundled model)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--image", default=IMAGE, help=f"under $AERIALSEG_DATA (default: {IMAGE})")
    ap.add_argument("--screenshot", help="save a PNG of the app window showing the last result")
    args = ap.parse_args()
    if why := missing_tools():
        sys.exit(f"cannot run the app on a virtual screen: {why}")

    screen = VirtualScreen(*SCREEN)
    busy0, wall0 = cpu_busy_seconds(), time.monotonic()
    tmp = Path(f"/tmp/aerialseg-gui-bench-{os.getpid()}.png")
    try:
        aerial_screen(args.image, tmp)
        screen.show_image(tmp, 0, 0)
        model = ["--model", args.model] if args.model else []
        started = time.monotonic()
        screen.start_app(*model, *(["--tta"] if args.tta else []))
        viewable = wait_viewable(screen) - started
        loaded, ready = screen.wait_for("ready model=", timeout=120)
        startup = loaded - started
        ready = fields_of(ready)
        x0, y0 = START
        x1, y1 = x0 + REGION[0], y0 + REGION[1]
        in_app, end_to_end, segment, stalls = [], [], [], []
        for _ in range(args.rounds):
            screen.key_over_app("c")
            screen.wait_for("overlay shown")
            screen.xdotool("mousemove", x0, y0, "mousedown", 1, "mousemove", x1, y1)
            t0 = time.monotonic()
            screen.xdotool("mouseup", 1)
            shown, msg = screen.wait_for(f"result shown {REGION[0]}x{REGION[1]}", timeout=120)
            fields = fields_of(msg)
            in_app.append(float(fields["release_to_shown"]))
            segment.append(float(fields["segment_s"]))
            stalls.append(float(fields["stall_max_ms"]))
            end_to_end.append(shown - t0)
        if args.screenshot:
            time.sleep(0.5)  # let the progress bar settle
            shot = ImageGrab.grab(xdisplay=screen.display)
            shot.crop((0, 0, 1280, 760)).save(args.screenshot)
            print(f"screenshot: {args.screenshot}")
        ours = sum(process_cpu_seconds(p.pid) for p in screen.procs) + sum(os.times()[:4])
        others = (cpu_busy_seconds() - busy0 - ours) / (time.monotonic() - wall0)
    finally:
        screen.close()
        tmp.unlink(missing_ok=True)

    def fmt(xs):
        return f"median {statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f})"

    print(f"model: {ready['model']}  tta: {args.tta}  image: {args.image}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    # other work on the machine shows in the figure: say how much there was
    print(f"other processes meanwhile: {max(0, others):.2f} of {os.cpu_count()} CPUs busy")
    print(f"region {REGION[0]}x{REGION[1]}, {args.rounds} captures, mouse release -> result shown:")
    print(f"  in-app:     {fmt(in_app)}")
    print(f"  end to end: {fmt(end_to_end)}")
    print(f"  of which the model: {fmt(segment)}")
    print(
        f"longest event-loop stall while predicting: {max(stalls):.0f} ms (per capture: "
        f"{[round(x) for x in stalls]}; Tk polls every 20 ms)"
    )
    print(f"app start to window viewable: {viewable:.2f} s, to model ready: {startup:.2f} s")
    if "stall_max_ms" in ready:  # apps before the per-job count did not log it
        print(f"  and while loading the model at start-up: {float(ready['stall_max_ms']):.0f} ms")
    print(f"  raw in-app: {np.round(in_app, 3).tolist()}")


if __name__ == "__main__":
    main()
