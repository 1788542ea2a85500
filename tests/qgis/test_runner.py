"""The QGIS plugin's runner and ``aerialseg qgis``, without QGIS: argument lists, progress,
cancel, and the one message of a missing environment."""

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from aerialseg.qgis_plugin import runner

rasterio = pytest.importorskip("rasterio")

from ..geo_helpers import scene, write_raster  # noqa: E402

SRC = str(Path(runner.__file__).resolve().parents[2])


class Feedback:
    """QgsProcessingFeedback's part the runner uses; cancels once ``cancel_after`` progress
    reports came."""

    def __init__(self, cancel_after=None):
        self.progress, self.info, self.cancel_after = [], [], cancel_after

    def setProgress(self, p):  # noqa: N802 - QGIS's name
        self.progress.append(p)

    def pushInfo(self, line):  # noqa: N802
        self.info.append(line)

    def isCanceled(self):  # noqa: N802
        return self.cancel_after is not None and len(self.progress) >= self.cancel_after


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(runner.ENV_VAR, raising=False)
    folder = tmp_path / "plugin"
    folder.mkdir()
    env = {"python": sys.executable, "pythonpath": SRC}
    (folder / runner.ENV_FILE).write_text(json.dumps(env))
    return folder


def test_the_child_gets_an_argument_list_and_odd_paths_pass_untouched(tmp_path, tiny_model,
                                                                      plugin_dir):  # fmt: skip
    photo, _ = scene(64, 96)
    odd = tmp_path / "a b;'c\" $(x).tif"
    write_raster(odd, photo)
    out = tmp_path / "out dir"
    fb = Feedback()
    args = ["segment", odd, "--out", out, "--model", tiny_model, "--window", "64"]
    runner.run(args, fb, plugin_dir=plugin_dir)
    assert runner.command("py", args)[:5] == ["py", "-m", "aerialseg", "qgis", "run"]
    assert (out / "a b;'c\" $(x)_labels.tif").is_file()
    assert fb.progress and fb.progress[-1] == 100.0
    assert fb.progress == sorted(fb.progress)


def test_cancel_stops_the_child_and_leaves_nothing(tmp_path, tiny_model, plugin_dir, request):
    # the caller ignores Ctrl+C, as QGIS (or a test runner) may: the child must not inherit
    # that, or it ignores the cancel and writes every output (as it did in the full suite)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, ignored))
    photo, _ = scene(1024, 1024)
    big = write_raster(tmp_path / "big.tif", photo)
    out = tmp_path / "out"
    promised = tmp_path / "promised.tif"
    promised.write_bytes(b"half")  # an output of this run, half-written
    fb = Feedback(cancel_after=1)
    args = ["segment", big, "--out", out, "--model", tiny_model, "--window", "64", "--vector"]
    start = time.monotonic()
    with pytest.raises(runner.Canceled, match="canceled"):
        runner.run(args, fb, outputs=[promised], plugin_dir=plugin_dir)
    assert time.monotonic() - start < 60
    assert not promised.exists()
    left = [p.name for p in out.rglob("*")] if out.exists() else []
    assert left == [], left


def test_a_missing_environment_is_one_message_saying_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv(runner.ENV_VAR, raising=False)
    with pytest.raises(runner.EnvironmentMissing, match="set AERIALSEG_PYTHON") as e:
        runner.run(["segment", "x.tif"], Feedback(), plugin_dir=tmp_path)
    assert "\n" not in str(e.value)
    monkeypatch.setenv(runner.ENV_VAR, str(tmp_path / "no-python"))
    with pytest.raises(runner.EnvironmentMissing, match="no-python: no such Python"):
        runner.run(["segment", "x.tif"], Feedback(), plugin_dir=tmp_path)
    bare = Path(sys.base_prefix) / "bin" / "python3"  # a Python without aerialseg
    if not bare.exists():
        pytest.skip("no base Python to stand for an environment without aerialseg")
    monkeypatch.setenv(runner.ENV_VAR, str(bare))
    with pytest.raises(runner.EnvironmentMissing, match="has no aerialseg; set AERIALSEG"):
        runner.run(["segment", "x.tif"], Feedback(), plugin_dir=tmp_path)


def test_aerialseg_errors_come_back_as_its_one_line(tmp_path, plugin_dir):
    with pytest.raises(runner.RunFailed, match="^aerialseg: error: .*missing.tif"):
        runner.run(["segment", tmp_path / "missing.tif", "--out", tmp_path], Feedback(),
                   plugin_dir=plugin_dir)  # fmt: skip


def test_install_copies_the_plugin_records_the_python_and_enables_it(tmp_path, capsys):
    ini = tmp_path / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[General]\nkey=1\n\n[PythonPlugins]\nother=true\naerialseg=false\n\n[X]\ny=2\n")
    from aerialseg.cli import main

    assert main(["qgis", "install", "--qgis-dir", str(tmp_path)]) == 0
    plugin = tmp_path / "profiles" / "default" / "python" / "plugins" / "aerialseg"
    assert {"__init__.py", "metadata.txt", "provider.py", "runner.py"} <= {
        p.name for p in plugin.iterdir()
    }
    assert json.loads((plugin / "env.json").read_text())["python"] == sys.executable
    text = ini.read_text()
    assert "aerialseg=true" in text and "aerialseg=false" not in text
    assert "other=true" in text and "[X]\ny=2" in text and "key=1" in text
    assert "hasProcessingProvider=yes" in (plugin / "metadata.txt").read_text()


def test_zip_holds_one_plugin_folder(tmp_path):
    import zipfile

    from aerialseg.cli import main

    assert main(["qgis", "zip", str(tmp_path / "p.zip")]) == 0
    names = zipfile.ZipFile(tmp_path / "p.zip").namelist()
    assert all(n.startswith("aerialseg/") for n in names)
    assert "aerialseg/__init__.py" in names and "aerialseg/env.json" in names
    assert not list(tmp_path.glob(".*tmp"))


def test_the_plugin_package_imports_without_qgis_or_torch():
    import subprocess

    code = (
        "import sys; import aerialseg.qgis_plugin, aerialseg.qgis_plugin.runner; "
        "print('torch' in sys.modules, 'qgis' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": SRC})  # fmt: skip
    assert r.stdout.split() == ["False", "False"], r.stderr
