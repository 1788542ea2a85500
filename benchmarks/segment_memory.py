"""Peak memory (RSS) of `aerialseg segment` on a 10 000 x 10 000 image.

The image is a real dataset image mirrored out to the full size (or a synthetic pattern
without the dataset). The command runs in a child process; its peak RSS is read from
getrusage(RUSAGE_CHILDREN).

    python benchmarks/segment_memory.py [--size 10000] [--model PATH] [--tta]

Figure: the peak RSS of segmenting a 10 000² JPEG, quoted in docs/results.md (memory).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aerialseg.config import data_root


def make_image(size: int, path: Path) -> str:
    root = data_root(required=False)
    src = Path(root or ".") / "Tile 7" / "images" / "image_part_001.jpg"
    if root and src.is_file():
        tile = np.array(Image.open(src).convert("RGB"))
        what = f"{src.name} mirrored out"
    else:
        yy, xx = np.mgrid[:512, :512]
        tile = np.stack([(xx % 256), (yy % 256), ((xx + yy) % 256)], -1).astype(np.uint8)
        what = "synthetic pattern"
    reps = (-(-size // tile.shape[0]), -(-size // tile.shape[1]), 1)
    big = np.tile(np.concatenate([tile, tile[::-1]], 0), (reps[0] // 2 + 1, 1, 1))
    big = np.tile(np.concatenate([big, big[:, ::-1]], 1), (1, reps[1] // 2 + 1, 1))
    Image.fromarray(big[:size, :size]).save(path, quality=90)
    return what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--model")
    ap.add_argument("--tta", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        img = Path(tmp) / "big.jpg"
        what = make_image(args.size, img)
        cmd = [
            sys.executable,
            "-m",
            "aerialseg.cli",
            "segment",
            str(img),
            "--out",
            str(Path(tmp) / "out"),
            "-q",
        ]
        cmd += ["--model", args.model] if args.model else []
        cmd += ["--tta"] if args.tta else []
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if r.returncode:
            sys.exit(f"segment failed: {r.stderr.strip()}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB -> GiB
        outs = sorted(p.name for p in (Path(tmp) / "out").iterdir())
    print(f"{args.size} x {args.size} image ({what}){' with TTA' if args.tta else ''}")
    print(f"  peak RSS {peak:.2f} GiB, {secs:.0f} s, outputs: {', '.join(outs)}")


if __name__ == "__main__":
    main()
