"""Two ``aerialseg segment`` processes writing the same outputs into one folder at once
(``--overwrite``, two different models, so their files differ) never corrupt each other's
files: every file that ever appears under a final name, and every file at the end, is whole
and is one of the two processes' versions byte for byte; no temporary file is left.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..corpus.conftest import run_cli
from ..helpers import tiny_checkpoint
from .harness import one_thread, start_together
from .test_segment_kills import final_files, make_inputs


def segment(inputs, out, model) -> list[str]:
    inputs = [inputs] if isinstance(inputs, Path) else inputs
    return ["segment", *map(str, inputs), "--out", str(out), "--model", str(model),
            "--window", "256", "--precision", "fp32", "--overwrite", "-q"]  # fmt: skip


def test_two_segment_processes_in_one_folder(tmp_path):
    import torch

    inputs = make_inputs(tmp_path / "in")
    models, versions = {}, {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        models[name] = tiny_checkpoint(tmp_path / f"{name}.safetensors")
        with one_thread():  # as the children
            r = run_cli(*segment(inputs, tmp_path / f"ref_{name}", models[name]))
        assert r.code == 0, r.err
        versions[name] = {
            n: p.read_bytes() for n, p in final_files(tmp_path / f"ref_{name}").items()
        }
    assert versions["a"].keys() == versions["b"].keys()
    assert all(versions["a"][n] != versions["b"][n] for n in versions["a"] if "_stats" in n)

    mixed = []
    for round in range(3):  # until the two did overlap (a busy machine may run one first)
        final, changes = race(tmp_path / f"round_{round}", inputs, models, versions)
        mix = {k for n in final for k in versions if final[n] == versions[k][n]}
        print(f"\nround {round + 1}: versions appeared in the order {''.join(changes)}")
        mixed.append(mix == {"a", "b"})
        if mixed[-1]:
            break
    # a's first images overwritten by b's last and b's first by a's last: the end holds
    # files of both only if they wrote into the folder at the same time
    assert any(mixed), "the two processes never overlapped"


def race(tmp: Path, inputs: Path, models: dict, versions: dict):
    """Both processes at once into ``tmp/out``, watched; checks what must always hold and
    returns the final files and the order in which the versions appeared."""
    tmp.mkdir()
    out = tmp / "out"
    seen: dict[str, set[str]] = {}
    changes: list[str] = []  # the order in which versions replaced each other
    bad: list[str] = []
    stop = threading.Event()

    def watch():  # every state of every final file: whole, and a or b's
        while not stop.is_set():
            for name, path in final_files(out).items():
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                who = [k for k in versions if versions[k].get(name) == data]
                if not who:
                    bad.append(name)
                if not seen.get(name, set()) >= set(who):
                    changes.append("".join(who))
                seen.setdefault(name, set()).update(who)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # a does the images in order, b backwards: they meet on the same files mid-way
        order = sorted(inputs.iterdir())
        commands = [
            segment(files, out, models[k]) for k, files in (("a", order), ("b", order[::-1]))
        ]
        procs = start_together(commands, tmp)
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    finally:
        time.sleep(0.05)
        stop.set()
        watcher.join()

    assert not bad, f"files that are neither process's version: {sorted(set(bad))}"
    final = {n: p.read_bytes() for n, p in final_files(out).items()}
    assert final.keys() == versions["a"].keys()
    assert all(final[n] in (versions["a"][n], versions["b"][n]) for n in final)
    assert not [p for p in Path(out).rglob(".*")], "temporary files left"
    return final, changes
