"""Desktop app: how responsive the window stays while *Improve model* fine-tunes, with the
fine-tune in a thread of the app's process vs in a child process (app/tuning.py).

A Tk window on a private Xvfb screen ticks every 20 ms (as the app's poll does) while
``aerialseg.training.finetune.finetune`` runs on corrections painted on a synthetic
1024 x 768 picture (2 % of its pixels, discs of radius 15), with the bundled model (or
--model). Per run: the longest gap between two ticks beyond their period (the longest time the
window could not react), the 95th percentile of the gaps, the fine-tune's steps and wall time,
and for the child process how long Cancel takes to end it. Both ways run in the same session,
alternately, so they share the machine's load.

    python benchmarks/app_finetune.py [--model PATH] [--minutes 0.5] [--rounds 2]

Figure: the app's Improve-model responsiveness (longest Tk tick gap, thread vs child process),
quoted in docs/results.md (desktop app).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from aerialseg.app.virtual_screen import VirtualScreen, missing_tools

TICK_MS = 20


def corrections(folder: Path, seed: int = 0) -> None:
    """A blocky synthetic picture and 2 % of its pixels painted with random classes."""
    from aerialseg.app.correct import Corrections

    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    rgb = np.kron(blocks, np.ones((64, 64, 1), np.uint8))
    rgb = np.clip(rgb + rng.integers(-10, 11, rgb.shape), 0, 255).astype(np.uint8)
    c = Corrections(6)
    e = c.entry_for(rgb, "synthetic", "synthetic")
    while e.painting.labelled < 0.02 * 1024 * 768:
        x, y = rng.uniform(0, 1024), rng.uniform(0, 768)
        e.painting.line((x, y), (x + rng.uniform(-20, 20), y), 15, int(rng.integers(6)))
        e.painting.end()
    c.save(folder)


def measure(mode: str, model: Path, folder: Path, out: Path, minutes: float) -> dict:
    """Run one fine-tune in ``mode`` ("thread" or "process") under a ticking Tk window."""
    import tkinter as tk

    root = tk.Tk()
    root.geometry("300x200")
    gaps: list[float] = []
    last = [time.monotonic()]
    state: dict = {}

    def tick():
        now = time.monotonic()
        gaps.append(max(0.0, now - last[0] - TICK_MS / 1000))
        last[0] = now
        if mode == "process":
            if tune.poll():
                state["record"], state["error"] = tune.result, tune.error
                root.quit()
                return
        elif state.get("done"):
            root.quit()
            return
        root.after(TICK_MS, tick)

    t0 = time.monotonic()
    if mode == "process":
        from aerialseg.app.tuning import FineTune

        tune = FineTune(model, folder / "images", folder / "labels", out, minutes)
    else:

        def job():
            from aerialseg.config import FinetuneConfig
            from aerialseg.training.finetune import finetune

            cfg = FinetuneConfig(minutes=minutes)
            state["record"] = finetune(
                model, folder / "images", folder / "labels", out, cfg, progress=False,
                log=lambda m: None, on_progress=lambda f, m: None,
            )  # fmt: skip
            state["done"] = True

        threading.Thread(target=job, daemon=True).start()
    root.after(TICK_MS, tick)
    root.mainloop()
    wall = time.monotonic() - t0
    root.destroy()
    record = state.get("record") or {}
    return {
        "mode": mode,
        "stall_max_ms": 1000 * max(gaps),
        "stall_p95_ms": 1000 * float(np.percentile(gaps, 95)),
        "ticks": len(gaps),
        "steps": record.get("steps"),
        "train_s": record.get("seconds"),
        "wall_s": wall,
        "error": state.get("error"),
    }


def cancel_seconds(model: Path, folder: Path, out: Path, after: float = 8.0) -> float:
    from aerialseg.app.tuning import FineTune

    tune = FineTune(model, folder / "images", folder / "labels", out, 5.0)
    time.sleep(after)
    t = time.monotonic()
    tune.cancel()
    tune.proc.wait()
    seconds = time.monotonic() - t
    assert not out.exists(), "a cancelled fine-tune left a model behind"
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="checkpoint to fine-tune (default: the bundled model)")
    ap.add_argument("--minutes", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--one", nargs=3, metavar=("MODE", "FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    from aerialseg.inference.segmenter import DEFAULT_MODEL

    model = Path(args.model) if args.model else DEFAULT_MODEL
    if args.one:  # one measurement, in a fresh process (a Tk interpreter per process)
        mode, folder, out = args.one
        print(json.dumps(measure(mode, model, Path(folder), Path(out), args.minutes)))
        return 0
    why = missing_tools()
    if why:
        sys.exit(why)
    screen = VirtualScreen(800, 600)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "corrections"
            corrections(folder)
            for i in range(args.rounds):
                for mode in ("thread", "process"):
                    out = Path(tmp) / f"{mode}-{i}.safetensors"
                    cmd = [sys.executable, __file__, "--minutes", str(args.minutes)]
                    cmd += ["--model", str(model), "--one", mode, str(folder), str(out)]
                    done = subprocess.run(
                        cmd, env=screen.env, capture_output=True, text=True, check=True
                    )
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    print(
                        f"{mode:8s} round {i + 1}: longest stall {row['stall_max_ms']:.0f} ms, "
                        f"p95 {row['stall_p95_ms']:.1f} ms, {row['steps']} steps in "
                        f"{row['train_s']} s of fine-tuning, {row['wall_s']:.1f} s wall"
                        + (f", error: {row['error']}" if row["error"] else ""),
                        flush=True,
                    )
            cancel = cancel_seconds(model, folder, Path(tmp) / "cancelled.safetensors")
    finally:
        screen.close()
    print(f"\nmodel {model.name}, {args.minutes} min fine-tunes, {os.cpu_count()} CPUs")
    for mode in ("thread", "process"):
        mine = [r for r in rows if r["mode"] == mode]
        stall = statistics.median(r["stall_max_ms"] for r in mine)
        print(
            f"{mode:8s} median longest stall {stall:.0f}"
            f" ms, median p95 {statistics.median(r['stall_p95_ms'] for r in mine):.1f} ms, "
            f"median steps {statistics.median(r['steps'] or 0 for r in mine):.0f}"
        )
    print(f"process: Cancel ended the child in {cancel:.2f} s; no model file left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
