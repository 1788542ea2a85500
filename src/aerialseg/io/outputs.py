"""Files written for a segmented image: label PNG, colour mask, overlay, figure, statistics.

The mask PNG is in the *mask* colours (it reads back as the same labels, like the dataset's
masks); the overlay, figure and the statistics' colours are the *display* colours.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from ..classes import ClassTable, display_hex
from ..errors import AerialSegError
from .files import atomic_path, write_text
from .images import save_image

SUFFIXES = {
    "labels": "_labels.png",  # class index per pixel (mode L)
    "mask": "_mask.png",  # mask colours: reads back as these labels
    "overlay": "_overlay.jpg",  # colours blended over the photo
    "figure": "_figure.png",  # photo | prediction with a legend
    "stats_json": "_stats.json",
    "stats_csv": "_stats.csv",
}
PROBS_SUFFIX = "_probs.npy"
FIGURE_MAX_SIDE = 1600  # the figure is for looking at; big maps are shown downscaled
FIGURE_MAX_ASPECT = 4  # height over width of the pictures drawn; a taller one is drawn narrower


def output_paths(out_dir: Path, stem: str, probabilities: bool = False) -> dict[str, Path]:
    paths = {k: out_dir / f"{stem}{s}" for k, s in SUFFIXES.items()}
    if probabilities:
        paths["probs"] = out_dir / f"{stem}{PROBS_SUFFIX}"
    return paths


def check_free(paths: dict[str, Path], overwrite: bool, source: str | None = None) -> bool:
    """True when the outputs are to be written; False when all of them already exist from
    ``source`` (an earlier, complete run on the same image: nothing to do). Outputs that
    exist otherwise are refused unless ``overwrite``."""
    taken = [p for p in paths.values() if p.exists() or p.is_symlink()]
    if not taken or overwrite:
        return True
    if source is not None and len(taken) == len(paths) and _written_from(paths, source):
        return False
    raise AerialSegError(f"{taken[0]} exists (use --overwrite to replace it)")


def _written_from(paths: dict[str, Path], source: str) -> bool:
    try:
        return json.loads(paths["stats_json"].read_text()).get("image") == source
    except (OSError, ValueError, AttributeError):
        return False


def display_name(path: str | Path) -> str:
    """A path as text that can be printed and drawn anywhere: bytes that are not UTF-8 (kept
    by Python as surrogate escapes, which no encoder accepts) become U+FFFD."""
    return os.fsencode(str(path)).decode("utf-8", "replace")


def class_stats(labels: np.ndarray, classes: ClassTable, gsd: float | None = None) -> list[dict]:
    """Pixels and share of the image per class (with its display colour, as the maps show
    it); square metres when the ground sampling distance (metres per pixel) is known."""
    counts = np.bincount(labels.ravel(), minlength=len(classes))[: len(classes)]
    return class_counts_stats(counts, labels.size, classes, gsd)


def class_counts_stats(counts, total: int, classes: ClassTable, gsd: float | None = None):
    """:func:`class_stats` from the pixels of each class (``counts``) out of ``total``."""
    rows = []
    for name, shown, n in zip(classes.names, classes.display, counts):
        row = {
            "class": name,
            "color": display_hex(shown),
            "pixels": int(n),
            "percent": round(100 * n / total, 4),
        }
        if gsd:
            row["area_m2"] = round(float(n) * gsd * gsd, 2)
        rows.append(row)
    return rows


def overlay(rgb: np.ndarray, labels: np.ndarray, classes: ClassTable, opacity: float) -> np.ndarray:
    """The display colours over the photo at ``opacity`` (times each class's own alpha:
    a transparent class leaves the photo as it is)."""
    if not 0 <= opacity <= 1:
        raise AerialSegError(f"opacity must be between 0 and 1, not {opacity}")
    out = np.empty_like(rgb)
    for y in range(0, len(rgb), 512):  # in bands: a float copy of a huge image is 12 B/pixel
        band = rgb[y : y + 512].astype(np.float32) * (1 - opacity)
        band += opacity * classes.paint(labels[y : y + 512], rgb[y : y + 512])
        out[y : y + 512] = band.round()
    return out


def figure_step(h: int, w: int) -> int:
    """Every how many pixels the figure shows one, for an h x w picture."""
    return max(1, -(-max(h, w) // FIGURE_MAX_SIDE))


def side_by_side(
    rgb: np.ndarray,
    labels: np.ndarray,
    classes: ClassTable,
    title: str,
    stats: list[dict],
    path: Path,
) -> Path:
    from matplotlib.figure import Figure

    from ..plots import legend_handles, save_figure

    step = figure_step(*rgb.shape[:2])
    small, lab = rgb[::step, ::step], labels[::step, ::step]
    # a tall strip (1 500 x 40 000) made a 14 x 188-inch figure and 1.8 GB of rendering: the
    # height is capped, the strip drawn narrower inside it
    tall = min(small.shape[0] / small.shape[1], FIGURE_MAX_ASPECT)
    fig = Figure(figsize=(14, 7 * tall + 1))
    axes = fig.subplots(1, 2)
    for ax, img, t in zip(axes, (small, classes.paint(lab)), (title, "Prediction")):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(t)
        ax.axis("off")
    shares = [r["percent"] / 100 for r in stats]
    fig.legend(
        handles=legend_handles(classes, shares),
        loc="lower center",
        ncol=len(classes),
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, path)


def write_outputs(
    paths: dict[str, Path],
    rgb: np.ndarray,
    labels: np.ndarray,
    classes: ClassTable,
    title: str,
    opacity: float = 0.5,
    gsd: float | None = None,
    extra: dict | None = None,
) -> dict:
    """Write every output of one image, all or none: each goes to a temporary name, and only
    once all are written are they renamed into place (the statistics JSON last, so its
    presence means the set is complete). Returns the statistics."""
    with staged({k: paths[k] for k in SUFFIXES}) as tmp:
        return write_staged(tmp, rgb, labels, classes, title, opacity, gsd, extra)


@contextlib.contextmanager
def staged(paths: dict[str, Path]):
    """Temporary paths for ``paths`` (same keys), renamed into place together when the block
    succeeds; on any failure all are removed and nothing appears under a final name."""
    order = sorted(paths, key=lambda k: k != "stats_json")  # entered first, renamed last
    with contextlib.ExitStack() as stack:
        yield {k: stack.enter_context(atomic_path(paths[k])) for k in order}


def write_staged(tmp, rgb, labels, classes, title, opacity=0.5, gsd=None, extra=None) -> dict:
    """:func:`write_outputs` into paths already staged (the caller renames them)."""
    stats = class_stats(labels, classes, gsd)
    save_image(tmp["labels"], labels)
    save_image(tmp["mask"], classes.colorize(labels))
    save_image(tmp["overlay"], overlay(rgb, labels, classes, opacity))
    side_by_side(rgb, labels, classes, display_name(title), stats, tmp["figure"])
    info = {
        "image": title,
        "width": int(labels.shape[1]),
        "height": int(labels.shape[0]),
        **(extra or {}),
        "gsd_m": gsd,
        "classes": stats,
    }
    write_stats(tmp, info)
    return info


def write_stats(paths: dict[str, Path], info: dict) -> None:
    """The statistics as JSON (everything) and CSV (one row per class, ``info["classes"]``)."""
    write_text(paths["stats_json"], json.dumps(info, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(info["classes"][0]))
    writer.writeheader()
    writer.writerows(info["classes"])
    write_text(paths["stats_csv"], buf.getvalue())


def timestamped_stem(prefix: str, when: float | None = None) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in prefix) or "capture"
    return f"{safe}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}"


def stats_line(info_path: Path) -> str:
    """One line of class shares from a saved stats JSON, biggest first."""
    rows = json.loads(Path(info_path).read_text())["classes"]
    rows = sorted(rows, key=lambda r: -r["percent"])
    return ", ".join(f"{r['class']} {r['percent']:.1f}%" for r in rows if r["percent"] > 0)
