"""``aerialseg segment-batch``: the same outputs as ``segment`` on each input, on the local
engine and on Ray; a rerun skips what is complete and redoes what was cut off; a corrupt
raster is reported and the others complete.

The command runs in this process, so the Ray tests share one local Ray (started once for the
module: a start takes seconds) that the command finds and leaves running.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

import pytest
from PIL import Image

from aerialseg.cli import main

from ..helpers import make_scene, tiny_checkpoint

pytest.importorskip("rasterio", reason="the geo extra is not installed")

from ..geo_helpers import scene, write_raster  # noqa: E402 - needs rasterio

WINDOW = ["--window", "64"]  # several windows per input: the blending is exercised


def run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch on one thread in this process, as in each worker here: on 2 shared cores two
    OpenMP threads per process make every run several times slower, not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, one_thread):
    """Six small inputs (four GeoTIFFs, streamed; two PNGs, in memory), a tiny model, and
    what sequential ``segment`` writes for them."""
    root = tmp_path_factory.mktemp("batch")
    folder = root / "in"
    folder.mkdir()
    for i in range(4):
        write_raster(folder / f"r{i}.tif", scene(130 + 20 * i, 150, seed=i)[0])
    for i in range(2):
        Image.fromarray(make_scene(100, 90, seed=10 + i)[0]).save(folder / f"p{i}.png")
    model = tiny_checkpoint(root / "tiny.safetensors")
    code, _, err = run("segment", folder, "--model", model, "--out", root / "ref", "-q", *WINDOW)
    assert code == 0, err
    return folder, model, root / "ref"


NAMES = ["r0", "r1", "r2", "r3", "p0", "p1"]


def label_file(folder, name):
    return folder / (f"{name}_labels.tif" if name.startswith("r") else f"{name}_labels.png")


def assert_same_as_segment(out, ref, names=NAMES):
    for name in names:
        assert label_file(out, name).read_bytes() == label_file(ref, name).read_bytes(), name
        stats = json.loads((out / f"{name}_stats.json").read_text())
        assert stats == json.loads((ref / f"{name}_stats.json").read_text()), name


def manifest(out) -> dict:
    return json.loads((out / "segment-batch.json").read_text())["jobs"]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="the distributed extra is not installed")
    import logging

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


# Ray's start-up costs more than the three runs on it: its variants run with -m slow (in CI's
# `make test-slow`); the local engine covers the manifest, reruns and reports by default.
@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.slow)])
def engine(request):
    """The engine flags; Ray's with the module's Ray session."""
    if request.param == "ray":
        request.getfixturevalue("ray_session")
        return ["--engine", "ray", "--workers", "2"]
    return ["--engine", "local"]


def test_outputs_equal_segment_and_manifest(inputs, engine, tmp_path):
    folder, model, ref = inputs
    code, printed, err = run(
        "segment-batch", folder, "--model", model, "--out", tmp_path, *WINDOW, *engine
    )
    assert code == 0, err
    assert "segmented 6 of 6 inputs" in printed
    assert_same_as_segment(tmp_path, ref)
    jobs = manifest(tmp_path)
    assert sorted(jobs) == sorted(NAMES)
    for name, entry in jobs.items():
        assert entry["status"] == "done"
        assert all((tmp_path / f).is_file() for f in entry["outputs"])
        assert f"{name}_stats.json" in entry["outputs"]


def test_local_process_pool(inputs, tmp_path):
    """Two spawned worker processes, one torch thread each."""
    folder, model, ref = inputs
    argv = ["segment-batch", folder, "--model", model, "--out", tmp_path, "--workers", "2"]
    code, printed, err = run(*argv, *WINDOW)
    assert code == 0, err
    assert "2 workers x 1 thread" in printed
    assert_same_as_segment(tmp_path, ref)


def test_rerun_redoes_what_was_cut_off(inputs, engine, tmp_path):
    folder, model, ref = inputs
    argv = ["segment-batch", folder, "--model", model, "--out", tmp_path, *WINDOW, *engine]
    assert run(*argv)[0] == 0
    # r2 killed halfway: its label raster half written, no statistics, a temporary file of a
    # writer that is gone, and the manifest still saying "running"
    path = tmp_path / "segment-batch.json"
    body = json.loads(path.read_text())
    body["jobs"]["r2"]["status"] = "running"
    path.write_text(json.dumps(body))
    labels = label_file(tmp_path, "r2")
    labels.write_bytes(labels.read_bytes()[: labels.stat().st_size // 2])
    (tmp_path / "r2_stats.json").unlink()
    stale = tmp_path / ".r2_labels.tif.999999999-0123abcd.tif"
    stale.write_bytes(b"partial")
    # p1's input changed since (a newer modification time): done again too
    st = (folder / "p1.png").stat()
    os.utime(folder / "p1.png", ns=(1, 1))
    before = {n: label_file(tmp_path, n).stat().st_mtime_ns for n in NAMES}
    try:
        code, printed, err = run(*argv)
    finally:
        os.utime(folder / "p1.png", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert code == 0, err
    assert "segmented 2 of 6 inputs" in printed and "kept 4 complete" in printed
    assert_same_as_segment(tmp_path, ref)
    assert not stale.exists()
    after = {n: label_file(tmp_path, n).stat().st_mtime_ns for n in NAMES}
    assert [n for n in NAMES if after[n] != before[n]] == ["r2", "p1"]
    assert all(e["status"] == "done" for e in manifest(tmp_path).values())


def test_corrupt_raster_reported_others_complete(inputs, engine, tmp_path):
    folder, model, ref = inputs
    bad = tmp_path / "in" / "bad.tif"
    bad.parent.mkdir()
    bad.write_bytes(b"II*\x00" + bytes(range(256)) * 4)  # a TIFF header, then nonsense
    out = tmp_path / "out"
    argv = ["segment-batch", folder, bad, "--model", model, "--out", out, *WINDOW, *engine]
    code, printed, err = run(*argv)
    assert code == 1
    assert "segmented 6 of 7 inputs" in printed
    errors = [line for line in err.splitlines() if line.startswith("aerialseg: error:")]
    assert len(errors) == 1 and str(bad) in errors[0], err
    assert "Traceback" not in err
    assert_same_as_segment(out, ref)
    jobs = manifest(out)
    assert jobs["bad"]["status"] == "failed" and str(bad) in jobs["bad"]["error"]
    assert not list(out.glob("bad_*"))
    # a rerun tries the failed one again and keeps the rest
    code, printed, _ = run(*argv)
    assert code == 1 and "segmented 0 of 7" in printed and "kept 6 complete" in printed


def test_changed_options_redo_everything(inputs, tmp_path):
    folder, model, _ = inputs
    argv = ["segment-batch", folder / "p0.png", "--model", model, "--out", tmp_path, *WINDOW]
    assert run(*argv)[0] == 0
    code, printed, err = run(*argv, "--opacity", "0.3")
    assert code == 0 and "segmented 1 of 1" in printed and "other options" in err


def test_user_mistakes_are_one_line(inputs, tmp_path, monkeypatch):
    folder, model, _ = inputs
    code, _, err = run("segment-batch", folder, "--out", tmp_path, "--address", "ray://x:1")
    assert code == 2 and err.strip() == "aerialseg: error: --address is for --engine ray"
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    code, _, err = run(
        "segment-batch", folder, "--model", model, "--out", tmp_path, "--engine", "ray"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'aerialseg[distributed]'" in err
    code, _, err = run("segment-batch", tmp_path / "missing", "--out", tmp_path / "o")
    assert code == 2 and "no such file" in err


def test_every_segment_option_but_overwrite_makes_a_rerun_redo_the_outputs():
    import dataclasses

    from aerialseg.cli.batch import OUTPUT_OPTIONS
    from aerialseg.jobs.segment import SegmentOptions

    fields = {f.name for f in dataclasses.fields(SegmentOptions)} - {"overwrite"}
    assert fields <= set(OUTPUT_OPTIONS), fields - set(OUTPUT_OPTIONS)
