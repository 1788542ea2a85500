"""Segmenting big GeoTIFFs: peak memory against raster size, speed against the in-memory path.

    python benchmarks/georaster.py                       # 10 000² and 30 000², then 5 000²
    python benchmarks/georaster.py --sides 10000 --compare 0
    python benchmarks/georaster.py --sides 4000 --compare 0 --windows 768 1152   # per --window

Builds JPEG-compressed, tiled 3-band GeoTIFFs (UTM 40N, 0.5 m) by tiling the dataset's images
(in $AERIALSEG_DATA), runs ``aerialseg segment RASTER --vector`` in a child process and reports
its peak RSS, wall time, seconds per megapixel and the polygon output's time and size. With
--compare SIDE, the same SIDE² pixels are also segmented as a plain JPEG the in-memory way.

Figure: the big-GeoTIFF peak memory (10 000² `segment --vector`) and the 4000² --window memory
check, quoted in docs/results.md (GIS rasters); older runs in docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from aerialseg.config import data_root  # noqa: E402


def build(path: Path, side: int, images: list[Path], block: int = 1024) -> Path:
    """A side x side GeoTIFF made of dataset images (cropped/tiled), written block by block."""
    import rasterio
    from affine import Affine

    photos = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    profile = dict(
        driver="GTiff",
        width=side,
        height=side,
        count=3,
        dtype="uint8",
        crs="EPSG:32640",
        transform=Affine(0.5, 0, 500_000, 0, -0.5, 2_800_000),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="JPEG",
        photometric="YCBCR",
        jpeg_quality=90,
        BIGTIFF="YES",
    )
    k = 0
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, side, block):
            for x in range(0, side, block):
                h, w = min(block, side - y), min(block, side - x)
                p = photos[k % len(photos)]
                k += 1
                reps = (-(-h // p.shape[0]), -(-w // p.shape[1]), 1)
                tile = np.tile(p, reps)[:h, :w]
                dst.write(tile.transpose(2, 0, 1), window=((y, y + h), (x, x + w)))
    return path


def run(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GiB, stderr) of ``aerialseg ARGS`` in a child process."""
    cmd = [sys.executable, "-m", "aerialseg", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss / 2**20, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[10_000, 30_000])
    ap.add_argument("--compare", type=int, default=5_000, help="0: skip the speed comparison")
    ap.add_argument("--work", default=None, help="folder for the rasters (default: a temp one)")
    ap.add_argument(
        "--windows", type=int, nargs="+", default=[None], help="segment's --window, each in turn"
    )
    a = ap.parse_args()
    data = Path(data_root(None))
    images = sorted(data.glob("Tile */images/*.jpg"))[:40]
    work = Path(a.work or tempfile.mkdtemp(prefix="georaster-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for side, window in ((s, w) for s in a.sides for w in a.windows):
        tif = work / f"ortho{side}.tif"
        if not tif.exists():
            t = time.perf_counter()
            build(tif, side, images)
            print(
                f"built {tif.name} ({tif.stat().st_size / 2**20:.0f} MiB) in "
                f"{time.perf_counter() - t:.0f} s",
                flush=True,
            )
        out = work / f"out{side}"
        flags = ["--window", str(window)] if window else []
        wall, rss, _ = run(
            ["segment", str(tif), "--vector", "--out", str(out), "--overwrite", "-q", *flags]
        )
        stats = json.loads((out / f"ortho{side}_stats.json").read_text())
        poly = stats["polygons"]
        labels = (out / f"ortho{side}_labels.tif").stat().st_size
        row = {
            "side": side,
            "window": window,
            "megapixels": side * side / 1e6,
            "seconds": round(wall, 1),
            "s_per_mp": round(wall / (side * side / 1e6), 3),
            "peak_rss_gib": round(rss, 2),
            "labels_tif_mib": round(labels / 2**20, 1),
            "polygons": poly["polygons"],
            "polygon_seconds": poly["seconds"],
            "gpkg_mib": round(poly["bytes"] / 2**20, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.compare:
        side = a.compare
        tif = work / f"ortho{side}.tif"
        if not tif.exists():
            build(tif, side, images)
        import rasterio

        jpg = work / f"plain{side}.jpg"
        with rasterio.open(tif) as src:
            Image.fromarray(src.read().transpose(1, 2, 0)).save(jpg, quality=95)
        for name, path, extra in (("geotiff streamed", tif, []), ("in-memory jpeg", jpg, [])):
            wall, rss, _ = run(
                ["segment", str(path), "--out", str(work / "cmp"), "--overwrite", "-q", *extra]
            )
            row = {
                "path": name,
                "side": side,
                "seconds": round(wall, 1),
                "s_per_mp": round(wall / (side * side / 1e6), 3),
                "peak_rss_gib": round(rss, 2),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
