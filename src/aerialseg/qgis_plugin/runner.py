"""Running aerialseg for the QGIS plugin: in the aerialseg environment, as a child process.

Why a child process, not an import: QGIS runs plugins in its own Python (on Debian the system
Python 3.11), which has no torch, and putting torch into it would tie QGIS to one torch build
and one set of wheels. aerialseg already lives in an environment of its own, so the plugin
runs ``python -m aerialseg qgis run COMMAND ...`` there. Which Python that is was recorded by
``aerialseg qgis install`` (``env.json`` beside this file: ``sys.executable`` and the folder
aerialseg was imported from); ``AERIALSEG_PYTHON`` overrides it. The child gets an argument
list, never a shell string: layer names and paths may hold spaces, quotes or ``;``.

The child prints ``aerialseg-progress: PERCENT`` lines (``aerialseg qgis run``), which move
QGIS's progress bar. Cancel interrupts the child as Ctrl+C would (aerialseg then removes its
temporary files; its outputs appear only complete, by rename) and the outputs of this run
are removed, so nothing half-written is left. Pure Python: no QGIS and no torch needed here.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_FILE = "env.json"
ENV_VAR = "AERIALSEG_PYTHON"
PROGRESS = "aerialseg-progress:"
FIX = (
    f"set {ENV_VAR} to the python of the environment that holds aerialseg, or run "
    "`aerialseg qgis install` from that environment"
)


class EnvironmentMissing(RuntimeError):
    """No usable aerialseg environment: the message says what to set."""


class RunFailed(RuntimeError):
    """aerialseg refused or failed: its own one-line reason."""


class Canceled(RuntimeError):
    """The user pressed Cancel; nothing of this run was left behind."""


def environment(plugin_dir: Path = HERE) -> tuple[str, str | None]:
    """(python, folder to put on its PYTHONPATH or None): ``AERIALSEG_PYTHON``, else the
    environment recorded at install time."""
    python, path = os.environ.get(ENV_VAR), None
    if not python:
        try:
            env = json.loads((plugin_dir / ENV_FILE).read_text())
            python, path = env["python"], env.get("pythonpath")
        except (OSError, ValueError, KeyError, TypeError):
            raise EnvironmentMissing(
                f"aerialseg: no aerialseg environment is known; {FIX}"
            ) from None
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise EnvironmentMissing(f"aerialseg: {python}: no such Python; {FIX}")
    return python, path


def command(python: str, args: list) -> list[str]:
    """The child's argument list: an aerialseg command with progress lines."""
    return [python, "-m", "aerialseg", "qgis", "run", *(str(a) for a in args)]


def child_env(pythonpath: str | None) -> dict[str, str]:
    """QGIS's environment minus what points Python at QGIS's own interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(args: list, feedback, outputs=(), plugin_dir: Path = HERE, poll: float = 0.2) -> list[str]:
    """Run ``aerialseg ARGS`` in the aerialseg environment, reporting to ``feedback`` (QGIS's
    QgsProcessingFeedback, or anything with setProgress, isCanceled and pushInfo). On
    failure or cancel, the files in ``outputs`` are removed. Returns the child's lines."""
    python, pythonpath = environment(plugin_dir)
    cmd = command(python, args)
    feedback.pushInfo(" ".join(cmd))
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=child_env(pythonpath),
            preexec_fn=_default_sigint if os.name == "posix" else None,
        )
    except OSError as e:
        raise EnvironmentMissing(f"aerialseg: cannot start {python} ({e}); {FIX}") from None
    lines: list[str] = []
    try:
        _follow(proc, feedback, lines, poll)
    except BaseException:
        stop(proc)
        remove(outputs)
        raise
    finally:
        proc.stdout.close()
    if proc.returncode != 0:
        remove(outputs)
        raise _failure(python, lines, proc.returncode)
    return lines


def _follow(proc, feedback, lines: list[str], poll: float) -> None:
    """Pass the child's lines on until it ends; raise Canceled as soon as the user cancels."""
    q: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read, args=(proc.stdout, q), daemon=True)
    reader.start()
    while True:
        if feedback.isCanceled():
            raise Canceled("aerialseg: canceled; nothing was written")
        try:
            line = q.get(timeout=poll)
        except queue.Empty:
            continue
        if line is None:
            break
        _report(line.rstrip("\n"), feedback, lines)
    proc.wait()


def _read(stream, q: queue.Queue) -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def _report(line: str, feedback, lines: list[str]) -> None:
    if line.startswith(PROGRESS):
        try:
            feedback.setProgress(float(line[len(PROGRESS) :]))
        except ValueError:
            pass
        return
    lines.append(line)
    feedback.pushInfo(line)


def _default_sigint() -> None:
    """In the child, before it starts: Ctrl+C's default. A process that ignores SIGINT (a GUI
    may, and so may a test runner) hands that on to its children, and a child started so
    would ignore the cancel and finish writing its outputs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(proc, wait: float = 15.0) -> None:
    """End the child as Ctrl+C would, so that it removes its temporary files; killed if it
    does not end within ``wait`` seconds."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def remove(paths) -> None:
    for p in paths:
        if p and os.path.lexists(p):
            try:
                os.unlink(p)
            except OSError:
                pass


def _failure(python: str, lines: list[str], rc: int) -> Exception:
    text = "\n".join(lines)
    if "No module named aerialseg" in text or "No module named 'aerialseg" in text:
        return EnvironmentMissing(f"aerialseg: {python} has no aerialseg; {FIX}")
    errors = [line for line in lines if line.startswith("aerialseg: error:")]
    if errors:
        return RunFailed("; ".join(errors))
    last = lines[-1] if lines else f"exit status {rc}"
    return RunFailed(f"aerialseg failed (exit status {rc}): {last}")
