"""How long the ``aerialseg`` command takes to start, against the bare interpreter.

Times whole processes (as a user waits for them): ``aerialseg --help``, a user mistake that
exits at once (a missing input for ``segment``), ``train -h`` (its flags are generated from
the config), and for scale ``import torch`` (what a command pays once it does real work).
Each is run ``--runs`` times in alternation; the minimum is printed with its ratio to the
bare interpreter measured in the same run.

    python benchmarks/cli_startup.py [--runs 5]

Figure: the start-up times of `aerialseg --help`, a user error and `import torch`, quoted in
docs/results.md (command line).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASES = {
    "python -c pass (the interpreter alone)": ["-c", "pass"],
    "aerialseg --help": ["-m", "aerialseg", "--help"],
    "aerialseg segment missing.jpg (user error)": ["-m", "aerialseg", "segment", "missing.jpg"],
    "aerialseg train -h": ["-m", "aerialseg", "train", "-h"],
    "python -c 'import torch'": ["-c", "import torch"],
}


def seconds(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, *args], capture_output=True, check=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for argv in CASES.values():  # warm the file cache once
        seconds(argv)
    for _ in range(args.runs):
        for name, argv in CASES.items():
            times[name].append(seconds(argv))
    base = min(times[next(iter(CASES))])
    print(f"{'command':<46}{'min s':>8}{'median s':>10}{'vs bare':>9}  ({args.runs} runs)")
    for name, t in times.items():
        t = sorted(t)
        print(f"{name:<46}{t[0]:>8.3f}{t[len(t) // 2]:>10.3f}{t[0] / base:>8.1f}x")


if __name__ == "__main__":
    main()
