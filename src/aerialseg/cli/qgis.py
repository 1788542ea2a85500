"""``aerialseg qgis``: the QGIS plugin (``install`` into a QGIS profile, ``zip`` for "Install
from ZIP") and ``run``, the command line the plugin starts (any aerialseg command, with its
progress as ``aerialseg-progress: PERCENT`` lines that move QGIS's progress bar)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

from ..errors import AerialSegError
from . import common

PLUGIN = Path(__file__).resolve().parent.parent / "qgis_plugin"
NAME = "aerialseg"  # the plugin's folder, and the Processing provider's id


def default_qgis_dir() -> Path:
    """Where QGIS keeps its profiles (QGIS_CUSTOM_CONFIG_PATH wins, as in QGIS itself)."""
    custom = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    if custom:
        return Path(custom) / "QGIS3"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "QGIS" / "QGIS3"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "QGIS" / "QGIS3"
    return Path.home() / ".local" / "share" / "QGIS" / "QGIS3"


def environment_record() -> dict:
    """Which Python holds aerialseg, for the plugin (see ``qgis_plugin/runner.py``)."""
    return {"python": sys.executable, "pythonpath": str(PLUGIN.parent.parent)}


def _plugin_files():
    for path in sorted(PLUGIN.iterdir()):
        if path.is_file() and path.suffix in (".py", ".txt", ".qml", ".svg", ".png"):
            yield path


def cmd_install(args) -> int:
    profile = Path(args.qgis_dir or default_qgis_dir()) / "profiles" / args.profile
    target = profile / "python" / "plugins" / NAME
    if target.is_symlink() or target.is_file():
        raise AerialSegError(f"{target}: is not a plugin folder; remove it first")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for path in _plugin_files():
            shutil.copy2(path, target / path.name)
        (target / "env.json").write_text(json.dumps(environment_record(), indent=2) + "\n")
        enable(profile / "QGIS" / "QGIS3.ini")
    except OSError as e:
        raise AerialSegError(f"{profile}: cannot install the plugin ({e})") from None
    print(f"installed the QGIS plugin into {target} (enabled; runs {sys.executable})")
    print("restart QGIS; the algorithms are in the Processing Toolbox under aerialseg")
    return 0


def enable(ini: Path) -> None:
    """``[PythonPlugins] aerialseg=true`` in QGIS3.ini, every other line kept as it is (a
    text edit: configparser would rewrite Qt's INI syntax)."""
    lines = ini.read_text().splitlines() if ini.exists() else []
    try:
        start = lines.index("[PythonPlugins]")
    except ValueError:
        lines += ([""] if lines else []) + ["[PythonPlugins]"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    keep = [ln for ln in lines[start + 1 : end] if ln.split("=")[0].strip() != NAME]
    section = [lines[start], f"{NAME}=true", *keep]
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text("\n".join(lines[:start] + section + lines[end:]) + "\n")


def cmd_zip(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise AerialSegError(f"{out}: give a .zip file to write")
    if not out.parent.is_dir():
        raise AerialSegError(f"{out.parent}: no such folder")
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in _plugin_files():
            z.write(path, f"{NAME}/{path.name}")
        z.writestr(f"{NAME}/env.json", json.dumps(environment_record(), indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}: QGIS > Plugins > Manage and Install > Install from ZIP")
    print(f"(it runs aerialseg with {sys.executable}; elsewhere set AERIALSEG_PYTHON)")
    return 0


def cmd_run(args) -> int:
    """Another aerialseg command, its progress bars as lines (for the QGIS plugin)."""
    import tqdm

    from . import main

    if not args.rest:
        raise AerialSegError("qgis run: give the command to run, e.g. qgis run segment IMAGE")
    tqdm.tqdm = _line_bar(tqdm.tqdm)  # the commands import tqdm.tqdm when they run
    return main(args.rest)


def _line_bar(base):
    class LineBar(base):
        """A tqdm bar drawn nowhere, its progress printed as lines; only the bars that vanish
        when done (leave=False: the windows of one image, fine-tuning's steps) measure the
        long work, so only they are reported."""

        def __init__(self, *a, **kw):
            self._report = kw.get("leave") is False and kw.get("disable") is not True
            kw.update(disable=False if self._report else kw.get("disable"))
            kw.setdefault("file", open(os.devnull, "w"))  # noqa: SIM115 - lives with the bar
            kw.setdefault("mininterval", 0.5)
            super().__init__(*a, **kw)

        def display(self, msg=None, pos=None):
            if self._report and self.total:
                done = min(100.0, 100.0 * self.n / self.total)
                print(f"aerialseg-progress: {done:.1f}", file=sys.stderr, flush=True)
            return True

    return LineBar


def add_qgis(sub, help: str) -> None:
    q = common.subcommand(
        sub,
        "qgis",
        None,
        help,
        "The QGIS plugin: a Processing provider 'aerialseg' (segment, finetune, zonal_stats) "
        "that runs this aerialseg environment.",
    )
    actions = q.add_subparsers(dest="action", required=True, metavar="ACTION")
    i = actions.add_parser("install", help="install and enable the plugin in a QGIS profile")
    i.set_defaults(func=cmd_install)
    i.add_argument(
        "--qgis-dir", metavar="DIR", help=f"QGIS's settings folder ({default_qgis_dir()})"
    )
    i.add_argument("--profile", default="default", help="QGIS profile (default: %(default)s)")
    z = actions.add_parser("zip", help='the plugin as a zip for QGIS\'s "Install from ZIP"')
    z.set_defaults(func=cmd_zip)
    z.add_argument("out", metavar="OUT.zip")
    r = actions.add_parser("run", help="run a command with progress lines (the plugin's way)")
    r.set_defaults(func=cmd_run)
    r.add_argument("rest", nargs=argparse.REMAINDER, metavar="COMMAND ...")


PARSERS = {"qgis": add_qgis}
