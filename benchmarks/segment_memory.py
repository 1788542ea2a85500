"""Peak memory (RSS) and seconds per megapixel of `aerialseg segment` on big pictures.

For each --size and --format the picture is made (a real dataset image mirrored out to the
full size, or a synthetic pattern without the dataset), written strip by strip so that even a
40 000² one is never held whole here, and segmented by the command in a child process; its
own peak RSS comes from wait4(). Plain pictures (png, jpg) go the streamed way
(jobs/picture.py); a georeferenced GeoTIFF (geotiff) goes the GIS raster way. The aim (issue
23) is a peak of at most 1 GB (10^9 bytes) whatever the size: each row says whether it holds.

Baselines, measured in the same run, alternating (--repeats rounds):
- --baseline: the in-memory way (AERIALSEG_STREAM_PIXELS set out of reach: what `segment`
  did before pictures streamed), for plain pictures of at most --baseline-max pixels a side;
- --against SRC: the same command with another source tree first on PYTHONPATH (e.g.
  /work/main/src: today's code), any size and format.
Each prints the label pixels that differ from the baseline's and the CPU-s/MP ratio. Sizes
with no baseline run compare their CPU-s/MP with the smallest size's of this run.

    python benchmarks/segment_memory.py [--size 10000 20000] [--format png geotiff]
        [--model PATH | --tiny] [--baseline] [--baseline-max 10000] [--against SRC]
        [--repeats 2] [--tta] [--precision int8] [--threads 1] [--pictures DIR] [--jsonl FILE]

--pictures DIR keeps the pictures made there (and reuses them on a rerun); --jsonl appends a
record per run as it finishes (long runs, one process per size); --report FILE prints those
records, CPU-s/MP against the smallest size's. Figures: docs/results.md (memory).
"""

from __future__ import annotations

import argparse
import math
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


def run(picture: Path, out: Path, model, tta: bool, way: str, threads, precision=None):
    """(peak RSS bytes, wall seconds, CPU seconds) of one `segment` child. ``way``: streamed,
    in-memory, or a source tree to run instead of this one. CPU seconds (user + system, all
    threads) are the steadier cost on a machine others share."""
    cmd = [sys.executable, "-m", "aerialseg", "segment", str(picture), "--out", str(out), "-q"]
    cmd += ["--model", model] if model else []
    cmd += ["--tta"] if tta else []
    cmd += ["--precision", precision] if precision else []
    cmd += ["--max-pixels", str(10**12)]  # over 150 M pixels: asked for, as a user does
    env = {**os.environ, "AERIALSEG_STREAM_PIXELS": str(10**15 if way == "in-memory" else 0)}
    if way not in ("streamed", "in-memory"):
        env["PYTHONPATH"] = os.pathsep.join([way, env.get("PYTHONPATH", "")])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    secs = time.perf_counter() - t0
    err = child.stderr.read().decode()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"segment failed: {err.strip()}")
    return usage.ru_maxrss * 1024, secs, usage.ru_utime + usage.ru_stime  # KiB -> bytes


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
    import json
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the plain pictures made here
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=shape, nargs="+", default=[(10_000, 10_000)], help="N or WxH")
    ap.add_argument("--format", nargs="+", default=["png"], choices=("png", "jpg", "geotiff"))
    ap.add_argument("--model")
    ap.add_argument("--tiny", action="store_true", help="an untrained 4-filter U-Net")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--precision", help="segment's --precision (default: its own)")
    ap.add_argument("--baseline", action="store_true", help="also the in-memory way")
    ap.add_argument("--baseline-max", type=int, default=10_000)
    ap.add_argument("--against", help="also this source tree (e.g. /work/main/src)")
    ap.add_argument("--repeats", type=int, default=2, help="baseline pairs (default 2)")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the children")
    ap.add_argument("--pictures", type=Path, help="make (or reuse) the pictures here, keep them")
    ap.add_argument("--jsonl", type=Path, help="append a record per run")
    ap.add_argument("--report", type=Path, help="only print the figures of a --jsonl file")
    args = ap.parse_args()
    if args.report:
        return report(args.report)
    t, what = tile()
    load = os.getloadavg()[0]
    print(f"pictures: {what}; {os.cpu_count()} CPUs, load {load:.1f}; threads "
          f"{args.threads or 'default'}; model {args.model or 'bundled'}"
          + (" (tiny)" if args.tiny else "") + (" with TTA" if args.tta else "")
          + (f", {args.precision}" if args.precision else ""))  # fmt: skip
    print(f"{'size':>11} {'format':8} {'way':9} {'peak bytes':>13} {'GB':>5} {'GiB':>5} "
          f"{'<=1 GB':6} {'s/MP':>6} {'CPU s/MP':>8} {'s':>6}")  # fmt: skip
    first_cpu: dict[str, float] = {}  # format -> CPU s/MP of the first (smallest) size
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        folder = Path(tmp)
        model = args.model
        if args.tiny:
            sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
            from helpers import tiny_checkpoint

            model = str(tiny_checkpoint(folder / "tiny.safetensors", seed=0))
        for size in args.size:
            wxh = "x".join(map(str, size))
            mp = size[0] * size[1] / 1e6
            for fmt in args.format:
                keep = args.pictures / f"{fmt}-{wxh}" if args.pictures else None
                picture = _picture(size, fmt, keep or folder, t)
                base = []
                if args.baseline and fmt != "geotiff" and max(size) <= args.baseline_max:
                    base.append("in-memory")
                if args.against:
                    base.append(args.against)
                ways = (
                    [w for _ in range(args.repeats) for w in [*base, "streamed"]]
                    if base
                    else ["streamed"]
                )
                labels, cpu = {}, {}
                for i, way in enumerate(ways):
                    out = folder / f"out-{i}"
                    shutil.rmtree(out, ignore_errors=True)  # a rerun would keep the outputs
                    peak, secs, used = run(
                        picture, out, model, args.tta, way, args.threads, args.precision
                    )
                    name = "raster" if fmt == "geotiff" and way == "streamed" else way
                    name = "today" if way == args.against else name
                    ok = "yes" if peak <= 10**9 else "NO"
                    print(
                        f"{wxh:>11} {fmt:8} {name:9} {peak:13,d} {peak / 1e9:5.2f} "
                        f"{peak / 2**30:5.2f} {ok:6} {secs / mp:6.3f} {used / mp:8.3f} {secs:6.0f}",
                        flush=True,
                    )
                    cpu.setdefault(name, []).append(used / mp)
                    if args.jsonl:
                        with open(args.jsonl, "a") as f:
                            rec = {"size": wxh, "format": fmt, "way": name, "peak_bytes": peak,
                                   "wall_s": round(secs, 1), "cpu_s": round(used, 1),
                                   "cpu_s_per_mp": round(used / mp, 4), "load": os.getloadavg()[0],
                                   "threads": args.threads, "model": model or "bundled",
                                   "at": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
                            f.write(json.dumps(rec) + "\n")
                    suffix = "_labels.tif" if fmt == "geotiff" else "_labels.png"
                    labels.setdefault(name, out / f"{picture.stem}{suffix}")
                    if labels[name].parent != out:
                        shutil.rmtree(out, ignore_errors=True)  # one output per way is compared
                mine = "raster" if fmt == "geotiff" else "streamed"
                mean = {k: sum(v) / len(v) for k, v in cpu.items()}
                for other in labels:
                    if other != mine:
                        print(f"       against {other}: {same_labels(labels[other], labels[mine])}"
                              f"; CPU s/MP {mean[mine] / mean[other]:.3f}x")  # fmt: skip
                if fmt in first_cpu:
                    print(f"       CPU s/MP {mean[mine] / first_cpu[fmt]:.3f}x the first size's")
                first_cpu.setdefault(fmt, mean[mine])
                for path in labels.values():
                    shutil.rmtree(path.parent, ignore_errors=True)
                if keep is None:
                    picture.unlink()


def report(path: Path) -> None:
    """The records of a --jsonl file (runs made apart, e.g. one long run per size): peak per
    size, format and way, and CPU-s/MP against the smallest size's streamed run."""
    import json

    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    area = {r["size"]: math.prod(map(int, r["size"].split("x"))) for r in recs}
    first = {}
    for r in sorted(recs, key=lambda r: area[r["size"]]):
        if r["way"] in ("streamed", "raster"):
            first.setdefault(r["format"], r)
    print(f"{'size':>11} {'format':8} {'way':9} {'peak bytes':>13} {'GB':>5} {'GiB':>5} "
          f"{'<=1 GB':6} {'CPU s/MP':>8} {'x first':>7} {'load':>5} at")  # fmt: skip
    for r in sorted(recs, key=lambda r: (area[r["size"]], r["format"], r["at"])):
        base = first.get(r["format"])
        ratio = r["cpu_s_per_mp"] / base["cpu_s_per_mp"] if base else float("nan")
        ok = "yes" if r["peak_bytes"] <= 10**9 else "NO"
        print(
            f"{r['size']:>11} {r['format']:8} {r['way']:9} {r['peak_bytes']:13,d} "
            f"{r['peak_bytes'] / 1e9:5.2f} {r['peak_bytes'] / 2**30:5.2f} {ok:6} "
            f"{r['cpu_s_per_mp']:8.3f} {ratio:7.3f} {r['load']:5.1f} {r['at']}"
        )


def _picture(size, fmt, folder: Path, t) -> Path:
    """The picture of ``size`` in ``folder``: made there, or the one made by an earlier run."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [p for p in folder.glob("big.*") if p.suffix in (".png", ".tif", ".jpg")]
    return made[0] if made else make_picture(size, fmt, folder, t)


if __name__ == "__main__":
    main()
