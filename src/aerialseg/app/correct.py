"""The app's corrections, without Tk: sparse labels painted on an image, and the set of them.

A :class:`Painting` holds one image's labels as ``aerialseg finetune`` reads them: class
indices with 255 (``IGNORE_INDEX``) for pixels nobody painted. Strokes are round brushes
dragged along segments (every pixel whose centre lies within the radius of the segment, so a
fast drag leaves no gaps), an eraser (the same stroke writing 255) and filled polygons. Each
stroke is one undo step, stored as the changed rectangle before and after, not as a copy of
the image. A :class:`Corrections` set keeps the paintings of every image opened while the app
runs and saves them as ``images/NAME.png`` + ``labels/NAME.png`` pairs (one-band PNG,
255 = unlabelled), the layout ``aerialseg finetune --images DIR/images --labels DIR/labels``
reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import IGNORE_INDEX

UNDO_STEPS = 200  # strokes kept for undo; each holds only its changed rectangle


def capsule(
    shape: tuple[int, int], p0, p1, radius: float
) -> tuple[tuple[slice, slice], np.ndarray]:
    """The pixels whose centres lie within ``radius`` of the segment p0-p1 ((x, y) in image
    pixels, pixel (row r, column c) covering [c, c+1) x [r, r+1)): (the bounding slices, the
    mask inside them). A segment of length 0 is a disc."""
    (x0, y0), (x1, y1) = p0, p1
    h, w = shape
    top = max(0, int(np.floor(min(y0, y1) - radius)))
    bottom = min(h, int(np.ceil(max(y0, y1) + radius)) + 1)
    left = max(0, int(np.floor(min(x0, x1) - radius)))
    right = min(w, int(np.ceil(max(x0, x1) + radius)) + 1)
    box = (slice(top, max(top, bottom)), slice(left, max(left, right)))
    ys = np.arange(top, max(top, bottom), dtype=np.float64)[:, None] + 0.5
    xs = np.arange(left, max(left, right), dtype=np.float64)[None, :] + 0.5
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    # the nearest point of the segment to each pixel centre, as a fraction along it
    t = np.zeros(1) if length2 == 0 else np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0, 1)
    return box, (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2 <= radius * radius


def polygon_mask(shape: tuple[int, int], points) -> np.ndarray:
    """The pixels inside the polygon ``points`` ((x, y) in image pixels), as Pillow fills it."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(im).polygon([(float(x), float(y)) for x, y in points], fill=1, outline=1)
    return np.array(im, dtype=bool)


@dataclass
class _Edit:
    box: tuple[slice, slice]
    before: np.ndarray
    after: np.ndarray


class Painting:
    """One image's painted labels (uint8, 255 = unlabelled) with undo/redo by stroke."""

    def __init__(self, shape: tuple[int, int], num_classes: int):
        self.labels = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
        self.num_classes = num_classes
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []
        self._before: np.ndarray | None = None  # the labels when the open stroke began
        self.version = 0  # changes at every edit: what is saved can be compared with it

    # ------------------------------------------------------------------ strokes

    def begin(self) -> None:
        """Start a stroke: everything painted until :meth:`end` is undone in one step."""
        if self._before is None:
            self._before = self.labels.copy()

    def _value(self, cls: int | None) -> int:
        if cls is None:
            return IGNORE_INDEX
        if not 0 <= cls < self.num_classes:
            raise ValueError(f"class {cls} is not one of 0-{self.num_classes - 1}")
        return cls

    def line(self, p0, p1, radius: float, cls: int | None) -> None:
        """Paint (class ``cls``, or erase with None) a round brush dragged from p0 to p1."""
        value = self._value(cls)
        self.begin()
        box, mask = capsule(self.labels.shape, p0, p1, radius)
        self.labels[box][mask] = value
        self.version += 1

    def polygon(self, points, cls: int | None) -> None:
        """Fill the polygon ``points`` (a stroke of its own)."""
        value = self._value(cls)
        self.begin()
        self.labels[polygon_mask(self.labels.shape, points)] = value
        self.version += 1
        self.end()

    def end(self) -> bool:
        """Close the stroke; True if it changed a pixel (then it is one undo step)."""
        before, self._before = self._before, None
        if before is None:
            return False
        rows, cols = np.nonzero(before != self.labels)
        if not len(rows):
            return False
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        self._undo.append(_Edit(box, before[box].copy(), self.labels[box].copy()))
        del self._undo[:-UNDO_STEPS]
        self._redo.clear()
        return True

    # ------------------------------------------------------------------ undo / redo

    def undo(self) -> bool:
        self.end()
        if not self._undo:
            return False
        edit = self._undo.pop()
        self.labels[edit.box] = edit.before
        self._redo.append(edit)
        self.version += 1
        return True

    def redo(self) -> bool:
        self.end()
        if not self._redo:
            return False
        edit = self._redo.pop()
        self.labels[edit.box] = edit.after
        self._undo.append(edit)
        self.version += 1
        return True

    @property
    def labelled(self) -> int:
        return int(np.count_nonzero(self.labels != IGNORE_INDEX))


@dataclass
class Entry:
    """An image with its painting, and under which name it was last saved."""

    source: str
    rgb: np.ndarray
    painting: Painting
    stem: str
    saved: tuple[Path, int] | None = None  # (folder, painting version) last written


class Corrections:
    """The paintings of all images shown while the app runs (they accumulate: Improve model
    learns from all of them), and their saving into one folder."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.entries: list[Entry] = []
        self.folder: Path | None = None

    def entry_for(self, rgb: np.ndarray, source: str, stem: str) -> Entry:
        """The painting of this image: the one it already has if the same picture was shown
        before (same source, same pixels), else a new, empty one."""
        for e in self.entries:
            if e.source == source and e.rgb.shape == rgb.shape and np.array_equal(e.rgb, rgb):
                return e
        e = Entry(source, rgb, Painting(rgb.shape[:2], self.num_classes), stem)
        self.entries.append(e)
        return e

    def painted(self) -> list[Entry]:
        return [e for e in self.entries if e.painting.labelled]

    @property
    def labelled(self) -> int:
        return sum(e.painting.labelled for e in self.entries)

    def unsaved(self) -> list[Entry]:
        """Painted entries whose current labels are not in the folder yet."""
        return [
            e
            for e in self.painted()
            if e.saved is None or e.saved != (self.folder, e.painting.version)
        ]

    def save(self, folder: str | Path) -> list[Path]:
        """Write every painted image and its labels into ``folder``/images and /labels (each
        file atomically). A name already there from another session or image gets -2, -3...:
        earlier corrections are never overwritten, and stay in the folder for fine-tuning."""
        from ..io.images import save_image

        folder = Path(folder)
        written = []
        for e in self.painted():
            if e.saved is None or e.saved[0] != folder:
                e.stem = _free_stem(folder, e.stem)
            version = e.painting.version
            labels = e.painting.labels.copy()  # the Tk thread may paint while this saves
            save_image(folder / "images" / f"{e.stem}.png", e.rgb)
            written.append(save_image(folder / "labels" / f"{e.stem}.png", labels))
            e.saved = (folder, version)
        self.folder = folder
        return written


def _free_stem(folder: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... whichever has neither image nor labels yet."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) or "image"
    name, n = safe, 1
    while any((folder / sub / f"{name}.png").exists() for sub in ("images", "labels")):
        n += 1
        name = f"{safe}-{n}"
    return name
