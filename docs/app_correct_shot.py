"""docs/app_correct.jpg: the app's Correct mode after Improve model, on a drawn scene.

The picture is drawn here (sand, a road, villas with shadows, trees, pools, a lagoon: no
dataset image). The real app runs on a private Xvfb screen and is driven with xdotool as a
user would: Correct mode, a few strokes on the road and the water, Improve model with the
bundled model (or --model), then the screen is grabbed with the corrections shown.

    python docs/app_correct_shot.py [--model PATH] [--minutes 0.5] [--out docs/app_correct.jpg]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageGrab

from aerialseg.app.virtual_screen import VirtualScreen, missing_tools

W, H = 640, 420


def scene(seed: int = 3) -> Image.Image:
    rng = np.random.default_rng(seed)
    sand = np.array([196, 178, 140]) + rng.normal(0, 9, (H, W, 3))
    im = Image.fromarray(np.clip(sand, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.polygon([(420, 0), (640, 0), (640, 190), (540, 160), (470, 90)], fill=(38, 92, 128))
    d.line([(0, 250), (640, 300)], fill=(88, 88, 92), width=34)
    d.line([(300, 0), (330, 420)], fill=(92, 92, 96), width=26)
    for x in range(0, 640, 36):  # lane marks
        d.line([(x, 250 + x * 50 / 640), (x + 16, 250 + (x + 16) * 50 / 640)], fill=(230,) * 3)
    for i, (x, y) in enumerate(
        [(40, 60), (150, 50), (40, 150), (150, 160), (380, 330), (500, 340)]
    ):
        d.rectangle([x + 6, y + 6, x + 86, y + 66], fill=(120, 110, 95))  # shadow
        d.rectangle([x, y, x + 80, y + 60], fill=(236, 232, 222) if i % 2 else (214, 200, 176))
        d.rectangle([x + 50, y + 70, x + 78, y + 84], fill=(70, 170, 200))  # pool
    for _ in range(40):
        x, y, r = rng.integers(0, W), rng.integers(0, H), rng.integers(5, 12)
        d.ellipse([x - r, y - r, x + r, y + r], fill=(60, 100 + int(rng.integers(40)), 45))
    return im.filter(ImageFilter.GaussianBlur(0.8))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--minutes", type=float, default=0.5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "app_correct.jpg"))
    args = ap.parse_args()
    why = missing_tools()
    if why:
        sys.exit(why)
    tmp = Path(tempfile.mkdtemp())
    scene().save(tmp / "drawn.png")
    screen = VirtualScreen(1400, 900)
    try:
        model = ["--model", args.model] if args.model else []
        screen.start_app(
            *model, "--corrections", tmp / "c", "--improve-minutes", args.minutes, tmp / "drawn.png"
        )
        screen.wait_for("result shown", 300)
        screen.key_over_app("r")
        _, message = screen.wait_for("correct mode on")
        mx, my = map(int, re.search(r"map_at=(-?\d+),(-?\d+)", message).groups())
        left, top, sx, sy = ast.literal_eval(re.search(r"placed=(\(.*?\))", message).group(1))

        def at(x, y):
            return round(mx + left + x * sx), round(my + top + y * sy)

        strokes = {  # key of the class -> strokes in image pixels
            "3": [[(20, 252), (200, 266), (400, 282), (620, 298)], [(304, 20), (318, 200)]],
            "5": [
                [(470, 20), (600, 40), (610, 140)],
                [(520, 70), (600, 110)],
                [(95, 127), (120, 127)],
            ],
            "2": [[(250, 60), (250, 180)], [(560, 230), (600, 400)]],
        }
        for key, lines in strokes.items():
            screen.key_over_app(key)
            for line in lines:
                args_ = ["mousemove", *at(*line[0]), "mousedown", 1]
                for p in line[1:]:
                    args_ += ["sleep", 0.1, "mousemove", *at(*p)]
                screen.xdotool(*args_, "sleep", 0.1, "mouseup", 1)
                screen.wait_for("stroke done")
        screen.key_over_app("i")
        screen.wait_for("improved shown", 600)
        screen.xdotool("mousemove", *at(560, 120))  # the brush outline over the water
        time.sleep(1.0)
        shot = ImageGrab.grab(xdisplay=screen.display).crop((0, 0, 1280, 760))
        shot.convert("RGB").save(args.out, quality=88)
        print(f"{args.out}: {[m for m in screen.log if 'improved shown' in m]}")
    finally:
        screen.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
