"""A private X screen on which the real app is driven like a user would: Xvfb + xdotool.

Not used by the app itself. It is the driver of the app's tests (tests/app) and of its latency
benchmark (benchmarks/gui_latency.py), kept here so that both import one copy, the way
``numpy.testing`` ships numpy's test helpers. Linux only; it needs the ``Xvfb`` and ``xdotool``
programs and tkinter (``missing_tools()`` says what is missing).

    screen = VirtualScreen(1400, 900)            # its own display, picked by Xvfb -displayfd
    try:
        screen.show_image("photo.png", 0, 0)     # something to capture
        screen.start_app("--model", "m.safetensors")   # aerialseg gui -v, DISPLAY=screen
        screen.wait_for("ready model=")          # the app's timestamped log
        screen.key_over_app("c")
        screen.drag(100, 100, 400, 300)
    finally:
        screen.close()

DISPLAY is set only for the processes it starts, never for the calling process.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

# A borderless window showing one image (argv: path, x, y)
VIEWER = """
import sys, tkinter as tk
root = tk.Tk()
root.overrideredirect(True)
img = tk.PhotoImage(file=sys.argv[1])
root.geometry(f"{img.width()}x{img.height()}+{sys.argv[2]}+{sys.argv[3]}")
tk.Label(root, image=img, bd=0, highlightthickness=0).pack()
root.update()
print("ready", flush=True)
root.mainloop()
"""

# A window from which a file (argv: path, x, y) is dragged like from a file manager
DRAG_SOURCE = """
import sys, tkinter as tk
root = tk.Tk()
try:
    root.tk.call("package", "require", "tkdnd")
except tk.TclError:
    print("no tkdnd", flush=True)
    sys.exit()
root.overrideredirect(True)
root.geometry(f"120x120+{sys.argv[2]}+{sys.argv[3]}")
label = tk.Label(root, text="drag me", background="yellow")
label.pack(fill="both", expand=True)
root.tk.call("tkdnd::drag_source", "register", label._w, "DND_Files")
files = root.tk.call("list", sys.argv[1])
init = root.register(lambda *a: root.tk.call("list", "copy", "DND_Files", files))
root.tk.call("bind", label._w, "<<DragInitCmd>>", init + " %W")
root.update()
print("ready", flush=True)
root.mainloop()
"""


def missing_tools() -> str | None:
    """Why a VirtualScreen cannot run here, or None if it can."""
    for tool in ("Xvfb", "xdotool"):
        if not shutil.which(tool):
            return f"{tool} not installed (.ci/run installs it)"
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return "tkinter missing"
    return None


class VirtualScreen:
    """An Xvfb server of our own, an image viewer on it, and the app driven by xdotool."""

    def __init__(self, width: int, height: int):
        r, w = os.pipe()
        self.procs: list[subprocess.Popen] = []
        self.xvfb = self._start(
            [
                "Xvfb",
                "-displayfd",
                str(w),
                "-screen",
                "0",
                f"{width}x{height}x24",
                "-nolisten",
                "tcp",
            ],  # fmt: skip
            pass_fds=(w,),
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        with os.fdopen(r) as f:
            self.display = ":" + f.readline().strip()
        self.env = {**os.environ, "DISPLAY": self.display}
        self.app: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()
        self.log: list[str] = []

    def _start(self, cmd, **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        return p

    def show_image(self, path: Path, x: int, y: int) -> subprocess.Popen:
        """A borderless window showing the image at ``path`` (PNG) with its top left at x, y."""
        p = self._start(
            [sys.executable, "-c", VIEWER, str(path), str(x), str(y)],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the image viewer did not start on {self.display}")
        return p

    def drag_source(self, path: Path, x: int, y: int) -> bool:
        """A window that drags ``path`` like a file manager; False without tkdnd."""
        p = self._start(
            [sys.executable, "-c", DRAG_SOURCE, str(path), str(x), str(y)],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        return p.stdout.readline().strip() == "ready"

    def start_app(self, *args) -> None:
        """``aerialseg gui -v *args`` on this screen; its log lines go to ``wait_for``."""
        self.app = self._start(
            [sys.executable, "-m", "aerialseg", "gui", "-v", *map(str, args)],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.app.stdout,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> tuple[float, str]:
        """The app's next log line containing ``text``: (its monotonic time, the message).
        AssertionError, with the log so far, if none comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} from the app; log so far: {self.log}") from None
            self.log.append(line)
            stamp, _, message = line.partition(" ")
            if text in message:
                return float(stamp), message

    def xdotool(self, *args) -> None:
        subprocess.run(["xdotool", *map(str, args)], env=self.env, check=True)

    def drag(self, x0, y0, x1, y1) -> None:
        self.xdotool("mousemove", x0, y0, "mousedown", 1, "mousemove", x1, y1, "mouseup", 1)

    def key_over_app(self, key: str) -> None:
        """With no window manager the keyboard follows the pointer: put it over the app."""
        self.xdotool("mousemove", 300, 300, "key", key)

    def close(self) -> None:
        """Stop everything started here, the X server last."""
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
