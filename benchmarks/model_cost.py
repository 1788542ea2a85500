"""What a model costs, as counts: parameters, GFLOP per megapixel and the float16 file size.

For the ablation summary's GFLOP/MP column (docs/experiments.md) and the bundled model's
12 MB limit (issue 13): FLOPs from ``torch.utils.flop_counter`` on one 1024 x 1024 forward
(a multiply-add counts 2), the size of the checkpoint ``aerialseg export --format half``
would write. Each model is given as a checkpoint or a registered name (with its default
settings, e.g. ``unet-effl2`` or ``unet-effl0:context=aspp``); ratios are against the first.

    python benchmarks/model_cost.py unet-effl0 unet-effl2 runs/NAME/last.safetensors
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from aerialseg.classes import DUBAI
from aerialseg.models import create_model
from aerialseg.models.checkpoint import load_checkpoint, save_checkpoint


def build(spec: str):
    """A checkpoint's model, or a registered name with ``:key=value,...`` settings."""
    if Path(spec).is_file():
        model, classes, _ = load_checkpoint(spec)
        return model, classes
    name, _, settings = spec.partition(":")
    kwargs = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
    return create_model(name, **kwargs).eval(), DUBAI


def cost(spec: str, side: int) -> dict:
    model, classes = build(spec)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, side, side) * 255)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "m.safetensors", model, classes, half=True)
        size = path.stat().st_size
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "gflop_per_mp": counter.get_total_flops() / 1e9 / (side * side / 1e6),
        "fp16_mb": size / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="checkpoints or registered names")
    ap.add_argument("--side", type=int, default=1024, help="input side for the FLOP count")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [(spec, cost(spec, args.side)) for spec in args.models]
    first = rows[0][1]
    print(f"{'model':44} {'params':>9} {'GFLOP/MP':>9} {'ratio':>6} {'fp16 MB':>8} {'ratio':>6}")
    for spec, c in rows:
        print(
            f"{spec:44} {c['params'] / 1e6:8.2f}M {c['gflop_per_mp']:9.1f} "
            f"{c['gflop_per_mp'] / first['gflop_per_mp']:6.2f} {c['fp16_mb']:8.2f} "
            f"{c['fp16_mb'] / first['fp16_mb']:6.2f}"
        )


if __name__ == "__main__":
    main()
