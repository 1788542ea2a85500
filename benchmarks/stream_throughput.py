"""Training data in memory vs streamed from disk (``train --stream``, ``--workers N``).

The same epoch of batches (same generator, so the same crops) is made five ways: from the
images decoded into memory (today's default), streamed from the dataset's JPEG/PNG files
(decoded once into a bounded cache) with 0 and N DataLoader workers, and streamed from a
GeoTIFF copy of the dataset (windows read by rasterio) with 0 and N workers. Reported: the
set-up (decoding everything, or the one pass for the pixel statistics), samples/s of the
batches alone, and samples/s of training the default U-Net on them (the step and the data
share the CPU, as in a run), medians of alternating rounds. Ratios are against the in-memory
row of the same run. (The JPEG/PNG stream's set-up decodes every image into its cache, which
the later rows share.)

    python benchmarks/stream_throughput.py [--batches 12] [--train-steps 3] [--workers 2]
                                           [--rounds 2] [--threads T]

Figure: the `train --stream` rows (batches per second in memory vs streamed), quoted in
docs/results.md (scaling out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aerialseg.classes import DUBAI
from aerialseg.config import data_root
from aerialseg.data import streaming
from aerialseg.data.segmentation import Batches, find_pairs, load_dataset, mean_std
from aerialseg.io.images import read_image, read_mask
from aerialseg.losses import make_loss
from aerialseg.models import create_model
from aerialseg.runtime import prepare, resolve_precision
from aerialseg.training.segmentation import train_step

PATCH, BATCH = 256, 16


def geotiff_copy(root: Path, dest: Path) -> Path:
    """The dataset as 8-bit RGB GeoTIFFs + one-band class-index GeoTIFF masks (tiled)."""
    import rasterio
    from affine import Affine

    for pair in find_pairs(root):
        folder = dest / (pair.group or ".")
        for sub in ("images", "masks"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        rgb = read_image(pair.image, strict=True)
        labels, _ = DUBAI.encode(read_mask(pair.mask))  # Dubai masks are colour PNGs
        h, w = labels.shape
        profile = dict(driver="GTiff", width=w, height=h, crs="EPSG:32640", tiled=True,
                       transform=Affine(0.5, 0, 500_000, 0, -0.5, 2_790_000),
                       blockxsize=256, blockysize=256, compress="deflate")  # fmt: skip
        name = pair.image.stem + ".tif"
        with rasterio.open(folder / "images" / name, "w", count=3, dtype="uint8", **profile) as f:
            f.write(rgb.transpose(2, 0, 1))
        with rasterio.open(folder / "masks" / name, "w", count=1, dtype="uint8", **profile) as f:
            f.write(labels[None])
    return dest


def setup(kind: str, root: Path):
    t0 = time.perf_counter()
    if kind == "memory":
        samples = load_dataset(root, DUBAI, PATCH)
    else:
        samples = streaming.stream_dataset(root, DUBAI, PATCH)
    mean_std(samples)  # the statistics the set-up computes: a pass over every pixel
    return samples, time.perf_counter() - t0


def data_rate(samples, workers: int, n: int) -> float:
    b = Batches(samples, PATCH, BATCH, patches_per_epoch=BATCH * n, jitter=0.1)
    t0 = time.perf_counter()
    count = sum(len(x) for x, _ in b.epoch(np.random.default_rng(0), workers))
    return count / (time.perf_counter() - t0)


def train_rate(samples, workers: int, steps: int) -> float:
    precision = resolve_precision("auto")
    torch.manual_seed(0)
    model = prepare(create_model("unet"), precision).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = make_loss("dice+focal")
    b = Batches(samples, PATCH, BATCH, patches_per_epoch=BATCH * (steps + 1), jitter=0.1)
    count, t0 = 0, None
    for i, (x, y) in enumerate(b.epoch(np.random.default_rng(1), workers)):
        train_step(model, opt, loss_fn, x, y, precision)
        if i == 0:  # warm-up step (kernel choice, workers starting) left out
            t0 = time.perf_counter()
        else:
            count += len(x)
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=12, help="batches timed for the data rate")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch threads of the training process")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = data_root(required=False)
    if not root:
        sys.exit("needs the Dubai dataset (AERIALSEG_DATA)")
    w = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        tif = geotiff_copy(Path(root), Path(tmp))
        sets, setup_s = {}, {}
        for kind, data in (("memory", root), ("stream", root), ("geotiff", tif)):
            sets[kind], setup_s[kind] = setup("memory" if kind == "memory" else "stream", data)
        rows = [
            ("in memory (default)", "memory", 0),
            ("stream JPEG/PNG, 0 workers", "stream", 0),
            (f"stream JPEG/PNG, {w} workers", "stream", w),
            ("stream GeoTIFF windows, 0 workers", "geotiff", 0),
            (f"stream GeoTIFF windows, {w} workers", "geotiff", w),
        ]
        rates = {name: ([], []) for name, _, _ in rows}
        for r in range(args.rounds):  # alternating: machine noise hits every row alike
            for name, kind, workers in rows:
                rates[name][0].append(data_rate(sets[kind], workers, args.batches))
                rates[name][1].append(train_rate(sets[kind], workers, args.train_steps))
                print(f"round {r + 1}: {name}: data {rates[name][0][-1]:.1f}, training "
                      f"{rates[name][1][-1]:.2f} samples/s", flush=True)  # fmt: skip
    med = {name: [statistics.median(v) for v in rates[name]] for name in rates}
    base = med[rows[0][0]]
    print(f"\nDubai, batches of {BATCH} x {PATCH}^2 crops (jitter), unet "
          f"{resolve_precision('auto')}, {torch.get_num_threads()} training threads, medians "
          f"of {args.rounds}")  # fmt: skip
    for name, kind, _ in rows:
        data, trained = med[name]
        print(
            f"  {name:<36} set-up {setup_s[kind]:5.1f} s  data {data:7.1f} samples/s "
            f"({data / base[0]:.2f}x)  training {trained:5.2f} samples/s ({trained / base[1]:.2f}x)"
        )


if __name__ == "__main__":
    main()
