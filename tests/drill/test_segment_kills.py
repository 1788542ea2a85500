"""Kill -9 drill for ``aerialseg segment``: killed mid-image (while predicting, while writing
an image's outputs, at random), the same command run again finishes the job, and the
outputs are byte for byte those of a run never interrupted. Throughout, a watcher reads
every file that appears under a final name: none is ever half-written or different.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..corpus.conftest import run_cli
from ..helpers import make_scene, tiny_checkpoint
from .harness import Child, one_thread, wait_until

IMAGES = 3


def make_inputs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(IMAGES):
        Image.fromarray(make_scene(192, 256, seed=300 + i)[0]).save(folder / f"scene_{i}.png")
    return folder


def images_done(out: Path) -> int:
    return len(list(out.glob("*_stats.json")))


def final_files(out: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(out)): p
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


class Watcher(threading.Thread):
    """Reads every file under a final name in ``out`` as soon as it appears and compares it
    with the uninterrupted run's: a half-written file would differ."""

    def __init__(self, out: Path, reference: dict[str, bytes]):
        super().__init__(daemon=True)
        self.out, self.reference = out, reference
        self.checked: set[str] = set()
        self.bad: list[str] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for name, path in final_files(self.out).items():
                if name in self.checked:
                    continue
                try:
                    data = path.read_bytes()
                except FileNotFoundError:  # replaced by a rerun with --overwrite: not here
                    continue
                if data != self.reference.get(name):
                    self.bad.append(name)
                self.checked.add(name)
            time.sleep(0.002)


def segment_args(inputs: Path, out: Path, model: Path) -> list:
    return ["segment", inputs, "--out", out, "--model", model, "--window", 256,
            "--precision", "fp32", "-q"]  # fmt: skip


def drill(tmp: Path, targets: list[str], seed: int = 0) -> list[dict]:
    inputs = make_inputs(tmp / "in")
    model = tiny_checkpoint(tmp / "tiny.safetensors")
    with one_thread():  # in-process: faster; one thread, as the children
        r = run_cli(*segment_args(inputs, tmp / "reference", model))
    assert r.code == 0, r.err
    reference = {n: p.read_bytes() for n, p in final_files(tmp / "reference").items()}
    assert len(reference) == IMAGES * 6

    out = tmp / "out"
    watcher = Watcher(out, reference)
    watcher.start()
    rng, rows = random.Random(seed), []
    try:
        for i, (target, after) in enumerate(targets):
            child = Child(segment_args(inputs, out, model), tmp / f"dumps_{i}.txt")
            before = images_done(out)

            def there(child=child, target=target, after=after):
                # mid-image: ``after`` images are done, and the next is at ``target``
                if images_done(out) < after:
                    return None
                where = child.where()  # random: any moment of the work, not of start-up
                return (where in ("predicting", "writing outputs", "loading") if target == "random"
                        else where == target) or None  # fmt: skip

            assert wait_until(there, child, step=0.01), f"never saw {target}"
            landed = target
            if target == "random":
                time.sleep(rng.uniform(0, 1))
                landed = child.where() or "(the run ended first)"
            child.kill()
            code, _, err = child.finish()
            assert "Traceback" not in err, err
            rows.append({"kill": i + 1, "aimed at": target, "landed": landed,
                         "images done before": before, "after": images_done(out)})  # fmt: skip
        code, stdout, err = Child(segment_args(inputs, out, model), tmp / "dumps_end.txt").finish()
        assert code == 0, err
        assert f"kept the outputs of {rows[-1]['after']} image" in stdout or not rows[-1]["after"]
        time.sleep(0.1)  # the watcher's last look
    finally:
        watcher.stop.set()
        watcher.join()
    assert not watcher.bad, f"differed from the uninterrupted run: {watcher.bad}"
    result = {n: p.read_bytes() for n, p in final_files(out).items()}
    assert result.keys() == reference.keys()
    assert all(result[n] == reference[n] for n in result)
    assert len(watcher.checked) == len(reference)
    assert not list(out.rglob(".*")), "temporary files of the killed runs are left"
    labels = np.array(Image.open(out / "scene_0_labels.png"))
    assert labels.shape == (192, 256)
    return rows


def test_quick_segment_kill_drill(tmp_path):
    """One kill while an image's outputs are being written, after the first image."""
    rows = drill(tmp_path, [("writing outputs", 1)])
    print("\n" + "\n".join(map(str, rows)))


@pytest.mark.slow
def test_segment_kill_drill(tmp_path):
    targets = [("predicting", 0), ("writing outputs", 1), ("predicting", 1), ("random", 1),
               ("writing outputs", 2)]  # fmt: skip
    rows = drill(tmp_path, targets, seed=5)
    print("\n" + "\n".join(map(str, rows)))
