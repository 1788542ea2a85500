"""Every ```python block of README.md and docs/**/*.md runs: a file's blocks in order, in one
fresh namespace, in a temporary folder holding ``photo.png`` (a 256x256 RGB picture) and
``ortho.tif`` (a small RGB GeoTIFF in UTM 33N). A block that cannot run so is fenced as
something else (```text, ```console, ```pycon) by its author. A file whose blocks need an extra
that is not installed is skipped, naming it."""

from __future__ import annotations

import importlib.util
import re
import textwrap
import traceback
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aerialseg.errors import AerialSegError

from .helpers import make_scene

ROOT = Path(__file__).parents[1]
# an opening fence at any indent (inside a list item too), to the closing fence at that indent
FENCE = re.compile(r"^( *)```python[ \t]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file() and "```python" in f.read_text(encoding="utf-8")]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the block's first line, its code dedented) for each ```python block."""
    return [
        (text.count("\n", 0, m.start(2)) + 1, textwrap.dedent(m.group(2)))
        for m in FENCE.finditer(text)
    ]


def test_blocks_are_found_with_their_lines_at_any_indent():
    text = "intro\n```python\nx = 1\n```\n- item\n\n  ```python\n  y = x\n  ```\n```text\nno\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (8, "y = x\n")]


def write_inputs(folder: Path) -> None:
    Image.fromarray(make_scene(256, 256, seed=7)[0]).save(folder / "photo.png")
    ortho = make_scene(160, 192, seed=8)[0]
    if importlib.util.find_spec("rasterio") is None:  # without the geo extra: a plain TIFF
        Image.fromarray(ortho).save(folder / "ortho.tif")
        return
    import rasterio
    from affine import Affine

    profile = {
        "driver": "GTiff",
        "count": 3,
        "height": ortho.shape[0],
        "width": ortho.shape[1],
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": Affine(0.5, 0, 500000, 0, -0.5, 4500000),  # 0.5 m pixels
        "photometric": "RGB",
    }
    with rasterio.open(folder / "ortho.tif", "w", **profile) as dst:
        dst.write(np.ascontiguousarray(ortho.transpose(2, 0, 1)))


def missing_extra(e: BaseException) -> str | None:
    """What is not installed, when that is why a block failed; None for a real failure."""
    if isinstance(e, ModuleNotFoundError) and e.name:
        top = e.name.split(".")[0]
        return top if importlib.util.find_spec(top) is None else None
    if isinstance(e, AerialSegError) and "pip install 'aerialseg[" in str(e):
        return str(e)
    return None


@pytest.mark.filterwarnings("ignore:FigureCanvasAgg is non-interactive")
@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path, tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")  # plt.show() draws nothing and opens no window
    import matplotlib.pyplot as plt

    write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    rel = path.relative_to(ROOT)
    try:
        for line, code in python_blocks(path.read_text(encoding="utf-8")):
            # compiled as lines of the document: a traceback shows the document's own lines
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    except Exception as e:
        extra = missing_extra(e)
        if extra is not None:
            pytest.skip(f"{rel}: needs {extra}")
        # the last frames only: pytest's own report would print the whole document above
        where = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3))
        msg = f"{rel}: a ```python block fails (fence it as text if it cannot run)\n{where}"
        pytest.fail(msg, pytrace=False)
    finally:
        plt.close("all")


def test_only_a_missing_extra_skips():
    assert missing_extra(ModuleNotFoundError("no", name="no_such_module_here.sub")) == (
        "no_such_module_here"
    )
    assert missing_extra(ModuleNotFoundError("no", name="numpy")) is None  # installed: a bug
    geo = AerialSegError("reading GIS rasters needs the geo extra: pip install 'aerialseg[geo]'")
    assert missing_extra(geo) == str(geo)
    assert missing_extra(AerialSegError("photo.png: no such file")) is None
    assert missing_extra(NameError("rgb")) is None
