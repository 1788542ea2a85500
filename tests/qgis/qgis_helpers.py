"""What the tests that run real QGIS share: where qgis_process and QGIS's Python are, a HOME
with the plugin installed, and running ``qgis_process run`` there."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = str(ROOT / "src")
PHOTOS = ROOT / "../shared/datasets/other-places/unlabelled"
# Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which it then rejects
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
QGIS_PYTHON = "/usr/bin/python3"  # python3-qgis: QGIS's Python (the system one on Debian)
NAMES = ("Building", "Land", "Road", "Vegetation", "Water")


def photo(name: str) -> Path:
    path = PHOTOS / name
    if not path.is_file():
        pytest.skip(f"{path} not found (real orthophotos)")
    return path


def install_plugin(home: Path) -> Path:
    """``aerialseg qgis install`` into ``home``'s default QGIS profile; the plugin folder."""
    qgis_dir = home / ".local/share/QGIS/QGIS3"
    r = subprocess.run(
        [sys.executable, "-m", "aerialseg", "qgis", "install", "--qgis-dir", qgis_dir],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return qgis_dir / "profiles/default/python/plugins/aerialseg"


def qgis_env(home: Path) -> dict:
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    # QGIS writes the statistics it computes for a layer as NAME.aux.xml beside the file: the
    # test photos are shared data, left as they were
    env["GDAL_PAM_ENABLED"] = "NO"
    env.pop("AERIALSEG_PYTHON", None)
    return env


def run_qgis(home: Path, alg: str, json_out=True, **params) -> subprocess.CompletedProcess:
    """``qgis_process [--json] run ALG -- KEY=VALUE...``: its exit status and output (without
    --json, the log a user reads: the algorithm's messages, then ``ERROR:\tREASON``)."""
    cmd = [QGIS_PROCESS, *["--json"] * json_out, "run", str(alg), "--"]
    cmd += [f"{k}={v}" for k, v in params.items()]
    return subprocess.run(cmd, capture_output=True, text=True, env=qgis_env(home), timeout=600)


def results(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout[r.stdout.index("{") :])["results"]


def qgis_process(home: Path, alg: str, **params) -> dict:
    return results(run_qgis(home, alg, **params))
