"""The desktop app: pure logic everywhere, and the real app driven under Xvfb with xdotool.

The Xvfb tests start their own X server on a free display (Xvfb -displayfd picks it), show a
known image on it, and run ``aerialseg gui -v`` in a subprocess whose timestamped log says
what the app did. DISPLAY is set only for the subprocesses. They skip when Xvfb, xdotool or
tkinter are missing.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aerialseg.app.capture import MIN_DRAG, Rect, normalize, parse_region, to_image, too_small
from aerialseg.app.window import Worker, fit
from aerialseg.classes import DUBAI
from aerialseg.errors import AerialSegError
from aerialseg.inference.outputs import save_result, stats_line, timestamped_stem

from ..helpers import make_scene

# ---------------------------------------------------------------------------------------------
# Pure logic


@pytest.mark.parametrize(
    "press, release",
    [((10, 20), (110, 70)), ((110, 70), (10, 20)), ((110, 20), (10, 70)), ((10, 70), (110, 20))],
)
def test_a_drag_in_any_direction_gives_the_same_rectangle(press, release):
    assert normalize(*press, *release) == Rect(10, 20, 100, 50)


def test_tiny_drags_are_too_small():
    assert too_small(Rect(0, 0, MIN_DRAG - 1, 500))
    assert too_small(Rect(0, 0, 500, 3))
    assert not too_small(Rect(0, 0, MIN_DRAG, MIN_DRAG))


def test_parse_region():
    assert parse_region("-1920,0,800,600") == Rect(-1920, 0, 800, 600)
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,10", "0,0,10,-5"):
        with pytest.raises(AerialSegError, match="region"):
            parse_region(bad)


def test_screen_units_map_to_screenshot_pixels_on_hidpi():
    # a Retina-like screen: 1440x900 points, 2880x1800 pixels in the screenshot
    assert to_image(Rect(100, 50, 300, 200), 1440, 900, (2880, 1800)) == Rect(200, 100, 600, 400)
    assert to_image(Rect(100, 50, 300, 200), 1440, 900, (1440, 900)) == Rect(100, 50, 300, 200)
    # a rectangle dragged past the screen edge is clipped, not padded
    assert to_image(Rect(1400, 880, 100, 100), 1440, 900, (2880, 1800)) == Rect(2800, 1760, 80, 40)


def test_fit_keeps_the_shape():
    assert fit((1024, 768), (512, 512)) == (512, 384)
    assert fit((100, 400), (600, 200)) == (50, 200)


def test_worker_runs_one_job_at_a_time_and_reports_errors():
    w = Worker()
    gate, got = threading.Event(), []
    assert w.submit("slow", lambda: gate.wait(5) and 42, got.append, got.append)
    assert not w.submit("second", lambda: 1, got.append, got.append)  # refused while busy
    assert w.busy_with == "slow"
    gate.set()
    _poll_until(w, got, 1)
    assert got == [42] and w.busy_with is None

    def bad():
        raise AerialSegError("cannot read image")

    assert w.submit("bad", bad, got.append, lambda m: got.append(f"error: {m}"))
    _poll_until(w, got, 2)
    assert got[1] == "error: cannot read image"


def _poll_until(w: Worker, got: list, n: int):
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        w.poll()
        time.sleep(0.01)


def test_save_result_writes_a_complete_set_and_never_overwrites(tmp_path):
    rgb, labels = make_scene(40, 60, seed=1)
    stem = timestamped_stem("my capture!", when=0)
    assert stem == "my-capture--" + time.strftime("%Y%m%d-%H%M%S", time.localtime(0))
    first = save_result(tmp_path, stem, rgb, labels, DUBAI, "tiny", {"tta": False})
    second = save_result(tmp_path, stem, rgb, labels, DUBAI, "tiny")
    assert first["input"].name == f"{stem}_input.png"
    assert second["input"].name == f"{stem}-2_input.png"
    for k in ("input", "mask", "overlay", "labels", "stats_json"):
        assert first[k].stat().st_size > 0, k
    assert np.array_equal(np.array(Image.open(first["input"])), rgb)
    assert np.array_equal(np.array(Image.open(first["labels"])), labels)
    assert np.array_equal(np.array(Image.open(first["mask"])), DUBAI.colorize(labels))
    info = json.loads(first["stats_json"].read_text())
    assert info["model"] == "tiny" and info["width"] == 60 and info["height"] == 40
    assert sum(r["pixels"] for r in info["classes"]) == 40 * 60
    assert stats_line(first["stats_json"]).count("%") == len(np.unique(labels))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in [*first.values(), *second.values()]
    )  # no staging folder left behind


def test_save_result_into_an_unwritable_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rgb, labels = make_scene(20, 20, seed=2)
    with pytest.raises(AerialSegError, match="cannot write to"):
        save_result(blocker / "out", "x", rgb, labels, DUBAI, "tiny")


# ---------------------------------------------------------------------------------------------
# The real app under Xvfb

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
        p = self._start(
            [sys.executable, "-c", VIEWER, str(path), str(x), str(y)],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout.readline().strip() == "ready"
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
        self.app = self._start(
            [sys.executable, "-m", "aerialseg.cli", "gui", "-v", *map(str, args)],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.app.stdout,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> tuple[float, str]:
        """The app's next log line containing ``text``: (its monotonic time, the message)."""
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
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def _have_x_tools() -> str | None:
    for tool in ("Xvfb", "xdotool"):
        if not shutil.which(tool):
            return f"{tool} not installed (.ci/run installs it)"
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return "tkinter missing"
    return None


needs_x = pytest.mark.skipif(_have_x_tools() is not None, reason=str(_have_x_tools()))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from aerialseg.io.checkpoint import save_checkpoint
    from aerialseg.models import create_model

    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_checkpoint(path, create_model("unet", base_filters=4), DUBAI)


@pytest.fixture
def screen():
    s = VirtualScreen(1400, 900)
    yield s
    s.close()


@pytest.fixture
def known_image(tmp_path) -> tuple[np.ndarray, Path]:
    photo, _ = make_scene(300, 400, seed=7)
    path = tmp_path / "known.png"
    Image.fromarray(photo).save(path)
    return photo, path


def expected_labels(model: Path, rgb: np.ndarray) -> np.ndarray:
    from aerialseg.inference.segmenter import load_model

    return load_model(model).segment(rgb)


@needs_x
def test_drag_captures_exactly_the_framed_pixels_and_saves_them(
    screen, known_image, tiny_model, tmp_path
):
    photo, path = known_image
    screen.show_image(path, 700, 400)  # partly under the app window: the app must get away
    out = tmp_path / "saved"
    screen.start_app("--model", tiny_model, "--autosave", out)
    screen.wait_for("ready model=")

    screen.key_over_app("c")
    screen.wait_for("overlay shown 1400x900")
    screen.drag(900, 600, 893, 592)  # a click-like drag is ignored, the overlay stays
    screen.wait_for("ignored a 7x8 drag")
    screen.drag(700 + 350, 400 + 250, 700 + 50, 400 + 30)  # bottom right to top left
    screen.wait_for("released 300x220 at (750, 430)")
    screen.wait_for("result shown 300x220")
    _, saved = screen.wait_for("saved ")

    stem = Path(saved.removeprefix("saved "))
    framed = photo[30:250, 50:350]
    got = np.array(Image.open(f"{stem}_input.png"))
    assert np.array_equal(got, framed)
    labels = np.array(Image.open(f"{stem}_labels.png"))
    assert np.array_equal(labels, expected_labels(tiny_model, framed))
    assert np.array_equal(np.array(Image.open(f"{stem}_mask.png")), DUBAI.colorize(labels))
    info = json.loads(Path(f"{stem}_stats.json").read_text())
    assert info["model"] == "tiny" and info["source"] == "screen 300x220 at (750, 430)"
    assert Path(f"{stem}_overlay.jpg").stat().st_size > 0


@needs_x
def test_window_stays_responsive_while_predicting(screen, tiny_model, tmp_path):
    photo, _ = make_scene(256, 256, seed=3)
    big = tmp_path / "big.png"
    Image.fromarray(photo).save(big)
    screen.start_app("--model", tiny_model, "--tta", big)
    started, _ = screen.wait_for("segmenting ")
    screen.key_over_app("c")  # a second capture while the first is being segmented
    refused, _ = screen.wait_for("refused: busy with Reading and segmenting big.png")
    shown, message = screen.wait_for("result shown 256x256")
    assert started < refused < shown, screen.log  # handled during the prediction, not after
    assert float(message.split("segment_s=")[1]) > 0, screen.log

    screen.key_over_app("c")  # now free: a capture starts, and Esc cancels it
    screen.wait_for("overlay shown")
    screen.xdotool("key", "Escape")
    screen.wait_for("capture cancelled")


@needs_x
def test_capture_command_grabs_the_region(screen, known_image, tiny_model, tmp_path):
    photo, path = known_image
    screen.show_image(path, 100, 50)
    out = tmp_path / "out"
    r = _aerialseg(
        "capture", "--region", "120,60,200,150", "--out", out, "--model", tiny_model, env=screen.env
    )
    assert r.returncode == 0, r.stderr
    assert "captured 200x150 at (120, 60)" in r.stdout
    (inp,) = out.glob("capture-*_input.png")
    framed = photo[10:160, 20:220]
    assert np.array_equal(np.array(Image.open(inp)), framed)
    labels = np.array(Image.open(str(inp).replace("_input", "_labels")))
    assert np.array_equal(labels, expected_labels(tiny_model, framed))

    r = _aerialseg(
        "capture", "--region", "1300,800,200,200", "--out", out, "--model", tiny_model,
        env=screen.env,
    )  # fmt: skip
    assert r.returncode == 2 and "not inside the screen (1400x900" in r.stderr


def _aerialseg(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "aerialseg.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_without_a_display_both_commands_fail_in_one_line(
    tiny_model, tmp_path, monkeypatch, capsys
):
    from aerialseg.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for args in (
        ["gui", "--model", tiny_model],
        ["capture", "--region", "0,0,64,64", "--out", tmp_path, "--model", tiny_model],
    ):
        assert main(list(map(str, args))) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aerialseg: error: "), lines
        assert "display" in lines[0].lower()
    assert not any(tmp_path.iterdir())  # nothing half-written
    assert main(["gui", "--model", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such model file" in capsys.readouterr().err


@needs_x
def test_a_bad_model_is_reported_in_the_window(screen, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a model")
    screen.start_app("--model", bad)
    _, message = screen.wait_for("error: ")
    assert "bad.safetensors" in message
    screen.key_over_app("c")  # no model: the capture is refused with a hint, not attempted
    screen.wait_for("error: No model loaded: choose one with Model…")


@needs_x
def test_a_file_dropped_on_the_window_is_segmented(screen, tmp_path, tiny_model):
    photo, _ = make_scene(120, 160, seed=5)
    path = tmp_path / "dropped image.png"  # a space, as file names often have
    Image.fromarray(photo).save(path)
    if not screen.drag_source(path, 1250, 100):
        pytest.skip("the tkdnd Tcl extension is not installed (apt install tkdnd)")
    screen.start_app("--model", tiny_model)
    screen.wait_for("ready model=")
    # XDND needs a few pointer moves over the target to negotiate before the release
    screen.xdotool(
        "mousemove", 1300, 150, "mousedown", 1, "mousemove", 1250, 150, "sleep", 0.1,
        "mousemove", 600, 300, "sleep", 0.1, "mousemove", 400, 300, "sleep", 0.2, "mouseup", 1,
    )  # fmt: skip
    screen.wait_for(f"dropped {path}", timeout=10)
    screen.wait_for("result shown 160x120")
