"""Peak memory (RSS) and seconds per megapixel of `aerialseg segment` on big pictures.

For each --size and --format the picture is made (a real dataset image mirrored out to the
full size, or a synthetic pattern without the dataset), written strip by strip so that even a
40 000² one is never held whole here, and segmented by the command in a child process; its
own peak RSS comes from wait4(). Plain pictures (png, jpg) go the streamed way
(jobs/picture.py); with --baseline the same picture is also segmented the in-memory
way (AERIALSEG_STREAM_PIXELS set out of reach: what `segment` did before), interleaved, in the
same run, where the picture is at most --baseline-max pixels a side, and the labels of the two
are compared. A georeferenced GeoTIFF (geotiff) goes the GIS raster way.

    python benchmarks/segment_memory.py [--size 10000 20000] [--format png geotiff]
        [--model PATH | --tiny] [--baseline] [--baseline-max 10000]
        [--repeats 2] [--tta]

Figures: the peak RSS and s/MP of big plain pictures and GeoTIFFs, docs/results.md (memory).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aerialseg.config import data_root
from aerialseg.io.pngstream import PngRows

STRIP = 512  # rows of the picture made at a time


def tile() -> tuple[np.ndarray, str]:
    root = data_root(required=False)
    src = Path(root or ".") / "Tile 7" / "images" / "image_part_001.jpg"
    if root and src.is_file():
        return np.array(Image.open(src).convert("RGB")), f"{src.name} mirrored out"
    yy, xx = np.mgrid[:512, :512]
    pattern = np.stack([(xx % 256), (yy % 256), ((xx + yy) % 256)], -1).astype(np.uint8)
    return pattern, "synthetic pattern"


def strips(t: np.ndarray, w: int, h: int):
    """(first row, rows) of the w x h picture: ``t`` mirrored out, strip by strip."""
    cols = mirrored(np.arange(w), t.shape[1])
    for y in range(0, h, STRIP):
        yield y, t[mirrored(np.arange(y, min(h, y + STRIP)), t.shape[0])][:, cols]


def mirrored(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices into n pixels, the picture flipped at every edge: n-1 ... 0, 0 ... n-1."""
    idx = idx % (2 * n)
    return np.where(idx >= n, 2 * n - 1 - idx, idx)


def shape(text: str) -> tuple[int, int]:
    """``--size``: N (N x N) or WxH."""
    w, _, h = text.partition("x")
    return int(w), int(h or w)


def make_picture(size: tuple[int, int], fmt: str, folder: Path, t: np.ndarray) -> Path:
    import rasterio
    from rasterio.shutil import copy
    from rasterio.windows import Window

    if fmt == "png":
        path = folder / "big.png"
        png = PngRows(path, *size, 3)
        for _, rows in strips(t, *size):
            png.write(rows)
        png.close()
        return path
    path = folder / "big.tif"
    profile = {"driver": "GTiff", "width": size[0], "height": size[1], "count": 3, "dtype": "uint8",
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
               "BIGTIFF": "IF_SAFER", "photometric": "RGB"}  # fmt: skip
    if fmt == "geotiff":  # 0.3 m pixels in UTM 40N (Dubai): the GIS raster path
        from affine import Affine

        profile.update(crs="EPSG:32640", transform=Affine(0.3, 0, 300000, 0, -0.3, 2800000))
    with rasterio.open(path, "w", **profile) as dst:
        for y, rows in strips(t, *size):
            dst.write(np.moveaxis(rows, -1, 0), window=Window(0, y, size[0], len(rows)))
    if fmt == "jpg":
        jpg = folder / "big.jpg"
        copy(path, jpg, driver="JPEG", QUALITY=90)
        path.unlink()
        return jpg
    return path


def run(picture: Path, out: Path, model: str | None, tta: bool, in_memory: bool):
    """(peak RSS GiB, wall seconds, CPU seconds) of one `segment` child. CPU seconds (user +
    system, all threads) are the steadier cost on a machine others share."""
    cmd = [sys.executable, "-m", "aerialseg", "segment", str(picture), "--out", str(out), "-q"]
    cmd += ["--model", model] if model else []
    cmd += ["--tta"] if tta else []
    cmd += ["--max-pixels", str(10**12)]  # over 150 M pixels: asked for, as a user does
    env = {**os.environ, "AERIALSEG_STREAM_PIXELS": str(10**15 if in_memory else 0)}
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    secs = time.perf_counter() - t0
    err = child.stderr.read().decode()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"segment failed: {err.strip()}")
    return usage.ru_maxrss / 1024**2, secs, usage.ru_utime + usage.ru_stime  # KiB -> GiB


def same_labels(a: Path, b: Path) -> str:
    """How many label pixels of two runs differ (read in strips: GDAL, bounded memory)."""
    import rasterio
    from rasterio.windows import Window

    differ = 0
    with rasterio.open(a) as x, rasterio.open(b) as y:
        for r in range(0, x.height, STRIP):
            win = Window(0, r, x.width, min(STRIP, x.height - r))
            differ += int((x.read(1, window=win) != y.read(1, window=win)).sum())
    return f"{differ} of {x.width * x.height} label pixels differ"


def main() -> None:
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the plain pictures made here
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=shape, nargs="+", default=[(10_000, 10_000)], help="N or WxH")
    ap.add_argument("--format", nargs="+", default=["png"], choices=("png", "jpg", "geotiff"))
    ap.add_argument("--model")
    ap.add_argument("--tiny", action="store_true", help="an untrained 4-filter U-Net")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--baseline", action="store_true", help="also the in-memory way")
    ap.add_argument("--baseline-max", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=2, help="baseline pairs (default 2)")
    args = ap.parse_args()
    t, what = tile()
    print(f"pictures: {what}; {os.cpu_count()} CPUs; model {args.model or 'bundled'}"
          + (" (tiny)" if args.tiny else "") + (" with TTA" if args.tta else ""))  # fmt: skip
    print(
        f"{'size':>11} {'format':8} {'path':9} {'peak GiB':>8} {'s/MP':>7} {'CPU s/MP':>8} {'s':>6}"
    )
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        folder = Path(tmp)
        model = args.model
        if args.tiny:
            sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
            from helpers import tiny_checkpoint

            model = str(tiny_checkpoint(folder / "tiny.safetensors", seed=0))
        for size in args.size:
            for fmt in args.format:
                picture = make_picture(size, fmt, folder, t)
                ways = ["streamed"]
                if args.baseline and fmt != "geotiff" and max(size) <= args.baseline_max:
                    ways = ["in-memory", "streamed"] * args.repeats  # interleaved
                labels = {}
                for way in ways:
                    out = folder / f"out-{way}"
                    shutil.rmtree(out, ignore_errors=True)  # a rerun would keep the outputs
                    peak, secs, cpu = run(picture, out, model, args.tta, way == "in-memory")
                    mp = size[0] * size[1] / 1e6
                    name = "raster" if fmt == "geotiff" else way
                    wxh = "x".join(map(str, size))
                    print(
                        f"{wxh:>11} {fmt:8} {name:9} {peak:8.2f} {secs / mp:7.3f} "
                        f"{cpu / mp:8.3f} {secs:6.0f}",
                        flush=True,
                    )
                    suffix = "_labels.tif" if fmt == "geotiff" else "_labels.png"
                    labels[way] = out / f"{picture.stem}{suffix}"
                if len(labels) == 2:
                    print(f"       {same_labels(labels['in-memory'], labels['streamed'])}")
                for way in labels:
                    shutil.rmtree(folder / f"out-{way}", ignore_errors=True)
                picture.unlink()


if __name__ == "__main__":
    main()
