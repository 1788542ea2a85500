"""The class table: class names, their mask colours, and colour <-> label conversion.

The table travels with every model (it is stored in the checkpoint), so a model always knows
what its outputs mean and how to draw them.

Two colours per class, because masks and maps answer to different people: the *mask* colour
is how a dataset's masks are read (the Dubai masks paint Water orange), the *display* colour
is how maps, legends, colour tables and the app show the class (Water blue). Mask PNGs that
aerialseg writes keep the mask colours, so they read back as the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AerialSegError

IGNORE_INDEX = 255  # label for pixels whose colour is no class: skipped by losses and metrics


def parse_hex(color: str) -> tuple[int, int, int]:
    s = color.strip().lstrip("#")
    if len(s) != 6:
        raise AerialSegError(f"bad colour {color!r}: expected #RRGGBB")
    try:
        return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)
    except ValueError:
        raise AerialSegError(f"bad colour {color!r}: expected #RRGGBB") from None


def to_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


TRANSPARENT = (0, 0, 0, 0)


def parse_display(color: str) -> tuple[int, int, int, int]:
    """A display colour: ``#RRGGBB``, ``#RRGGBBAA`` (alpha: 00 transparent .. FF opaque) or
    ``transparent``; RGBA, because a map may leave a class out (Unlabeled shows the photo)."""
    s = str(color).strip()
    if s.lower() in ("transparent", "none"):
        return TRANSPARENT
    if len(s.lstrip("#")) != 8:
        return (*parse_hex(s), 255)
    try:
        return (*parse_hex(s[:-2]), int(s[-2:], 16))
    except ValueError:
        raise AerialSegError(f"bad colour {color!r}: expected #RRGGBB or #RRGGBBAA") from None


def display_hex(rgba: tuple[int, int, int, int]) -> str:
    """The inverse of :func:`parse_display`: ``#RRGGBB`` when opaque, ``transparent``, else
    ``#RRGGBBAA`` (CSS's notation; Qt's QColor reads the first two, not the last)."""
    if rgba[3] == 0:
        return "transparent"
    return to_hex(rgba[:3]) + ("" if rgba[3] == 255 else f"{rgba[3]:02X}")


@dataclass(frozen=True)
class ClassTable:
    """Names and RGB mask colours of the classes, in label order.

    ``ignore_colors`` are colours that are known to mean "no class"; any colour not in the table
    is treated the same way (mapped to ``IGNORE_INDEX``), these are just not reported as unknown.
    ``background`` names classes that are not land cover (left out of the land-cover mIoU).
    ``display`` are the RGBA colours maps show (see the module docstring); left empty, they
    are filled in by :func:`default_display`.
    """

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_colors: tuple[tuple[int, int, int], ...] = ()
    background: tuple[str, ...] = field(default=())
    display: tuple[tuple[int, int, int, int], ...] = ()

    def __post_init__(self):
        self._check()
        if not self.display:  # frozen: the only way to fill a field after __init__
            object.__setattr__(self, "display", default_display(self.names, self.colors))
        if len(self.display) != len(self.names):
            raise AerialSegError("class table: names and display colours differ in number")

    def _check(self):
        if not self.names:
            raise AerialSegError("class table is empty")
        if len(self.names) != len(self.colors):
            raise AerialSegError("class table: names and colours differ in number")
        if len(self.names) >= IGNORE_INDEX:
            raise AerialSegError(f"class table: at most {IGNORE_INDEX - 1} classes")
        seen: dict[tuple[int, int, int], str] = {}
        for name, color in zip(self.names, self.colors):
            if color in seen:
                raise AerialSegError(
                    f"class table: classes {seen[color]!r} and {name!r} "
                    f"share colour {to_hex(color)}"
                )
            seen[color] = name
        for color in self.ignore_colors:
            if color in seen:
                raise AerialSegError(
                    f"class table: ignore colour {to_hex(color)} is also class {seen[color]!r}"
                )
        if len(set(self.names)) != len(self.names):
            raise AerialSegError("class table: duplicate class names")
        unknown = set(self.background) - set(self.names)
        if unknown:
            raise AerialSegError(f"class table: background names unknown classes {sorted(unknown)}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def land_cover(self) -> list[int]:
        """Label indices of the classes that count towards the land-cover mIoU."""
        return [i for i, n in enumerate(self.names) if n not in self.background]

    @property
    def palette(self) -> np.ndarray:
        """(C, 3) uint8 array of class colours, for ``palette[labels]``."""
        return np.array(self.colors, dtype=np.uint8)

    def encode(self, mask_rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """RGB mask (H, W, 3) -> labels (H, W) uint8 and the count of pixels of unknown colour."""
        code = _pack(mask_rgb)
        labels = np.full(code.shape, IGNORE_INDEX, dtype=np.uint8)
        for i, color in enumerate(self.colors):
            labels[code == _pack(np.array(color, dtype=np.uint8))] = i
        known_ignore = np.zeros(code.shape, dtype=bool)
        for color in self.ignore_colors:
            known_ignore |= code == _pack(np.array(color, dtype=np.uint8))
        unknown = int(np.count_nonzero((labels == IGNORE_INDEX) & ~known_ignore))
        return labels, unknown

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Labels (H, W) -> RGB image (H, W, 3) in the *mask* colours, the ones masks are read
        in (for mask files that must read back as labels); ignored pixels are black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: len(self)] = self.palette
        return lut[labels]

    @property
    def shown(self) -> np.ndarray:
        """(256, 4) uint8 RGBA lookup of the display colours; ignored labels transparent."""
        lut = np.zeros((256, 4), dtype=np.uint8)
        lut[: len(self)] = self.display
        return lut

    def paint(self, labels: np.ndarray, under: np.ndarray | None = None) -> np.ndarray:
        """Labels (H, W) -> RGB image in the *display* colours, for people to look at: each
        class's alpha blends it over ``under`` (an (H, W, 3) photo; white when None)."""
        rgba = self.shown[labels].astype(np.float32)
        alpha = rgba[..., 3:] / 255
        base = np.float32(255) if under is None else under.astype(np.float32)
        return (rgba[..., :3] * alpha + base * (1 - alpha)).round().astype(np.uint8)

    def swatch(self, i: int) -> str:
        """Class ``i``'s display colour over white as ``#RRGGBB``, for widgets without alpha."""
        return to_hex(tuple(int(v) for v in self.paint(np.array([i], dtype=np.uint8))[0]))

    def to_dict(self) -> dict:
        d = {
            "classes": [
                {"name": n, "color": to_hex(c), "display": display_hex(s)}
                for n, c, s in zip(self.names, self.colors, self.display)
            ]
        }
        if self.ignore_colors:
            d["ignore_colors"] = [to_hex(c) for c in self.ignore_colors]
        if self.background:
            d["background"] = list(self.background)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ClassTable:
        try:
            entries = d["classes"]
            names = tuple(str(e["name"]) for e in entries)
            colors = tuple(parse_hex(e["color"]) for e in entries)
        except (KeyError, TypeError):
            raise AerialSegError(
                'class table: expected {"classes": [{"name": ..., "color": "#RRGGBB"}, ...]}'
            ) from None
        ignore = d.get("ignore_colors", d.get("ignore_color", []))
        if isinstance(ignore, str):
            ignore = [ignore]
        return cls(
            names,
            colors,
            tuple(parse_hex(c) for c in ignore),
            tuple(d.get("background", ())),
            _display_entries(entries, colors),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ClassTable:
        """Load a table from JSON or YAML (``configs/dubai-classes.yaml`` shows the shape)."""
        from .io.files import read_mapping

        try:
            return cls.from_dict(read_mapping(path, "class table"))
        except AerialSegError as e:
            msg = str(e)
            raise AerialSegError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def _display_entries(entries: list, colors: tuple) -> tuple:
    """The ``display`` colours of a table's entries; () when none gives one (old checkpoints,
    plain tables: :func:`default_display` decides), else the mask colour where one is missing."""
    if not any(isinstance(e, dict) and "display" in e for e in entries):
        return ()
    return tuple(
        parse_display(e["display"]) if "display" in e else (*c, 255)
        for e, c in zip(entries, colors)
    )


def default_display(names: tuple[str, ...], colors: tuple) -> tuple:
    """Display colours of a table that gives none: the conventional land-cover palette when
    every class is a Dubai class (any case; old checkpoints of Dubai models land here), else
    the mask colours themselves, opaque (a user's own table looks as it always did)."""
    palette = {n.casefold(): c for n, c in DUBAI_DISPLAY.items()}
    if all(n.casefold() in palette for n in names):
        return tuple(palette[n.casefold()] for n in names)
    return tuple((*c, 255) for c in colors)


def match_names(table: ClassTable, known: ClassTable) -> list[int | None]:
    """For each class of ``table``, the index of the class of ``known`` of the same name in
    any case (None where ``known`` has none): users write "road" for a model's "Road"."""
    _check_case(table)
    index = {n.casefold(): i for i, n in enumerate(known.names)}
    return [index.get(n.casefold()) for n in table.names]


def check_known(table: ClassTable, known: ClassTable, where: str, new_ok: bool = False) -> None:
    """Refuse a table that a model of classes ``known`` cannot follow without learning
    (``segment``, ``evaluate``): a class it does not know, or one of its land-cover classes
    left out (its pixels would silently go to another class). Background classes (e.g.
    Unlabeled) may be left out: the model then picks among the table's classes only.
    ``new_ok``: classes it does not know are allowed (the app, whose painting teaches them),
    a class of its left out still is not."""
    rows = match_names(table, known)
    unknown = [n for n, r in zip(table.names, rows) if r is None]
    if unknown and not new_ok:
        raise AerialSegError(
            f"{where}: class{'es' * (len(unknown) > 1)} {', '.join(unknown)} "
            f"{'are' if len(unknown) > 1 else 'is'} not in the model (its classes: "
            f"{', '.join(known.names)}); teach "
            f"{'them' if len(unknown) > 1 else 'it'} first: aerialseg finetune --classes "
            f"{where} ..."
        )
    left_out = [n for i, n in enumerate(known.names) if i not in rows and n not in known.background]
    if left_out:
        raise AerialSegError(
            f"{where}: leaves out the model's class{'es' * (len(left_out) > 1)} "
            f"{', '.join(left_out)}; a table here names every class of the model "
            f"(background ones{_such_as(known)} may be left out), or teach a model the new "
            f"legend: aerialseg finetune --classes {where} ..."
        )


def _such_as(known: ClassTable) -> str:
    return f" such as {', '.join(known.background)}" if known.background else ""


def _check_case(table: ClassTable) -> None:
    seen: dict[str, str] = {}
    for n in table.names:
        if n.casefold() in seen:
            raise AerialSegError(
                f"class table: classes {seen[n.casefold()]!r} and {n!r} differ only in case"
            )
        seen[n.casefold()] = n


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


# How the Dubai classes are shown: a conventional land-cover palette (blue water, green
# vegetation, red buildings, grey roads, tan bare land; Unlabeled left transparent).
DUBAI_DISPLAY = {
    "Building": (0xC4, 0x28, 0x1B, 255),
    "Land": (0xD2, 0xB4, 0x8C, 255),
    "Road": (0x80, 0x80, 0x80, 255),
    "Vegetation": (0x33, 0xA0, 0x2C, 255),
    "Water": (0x1F, 0x78, 0xB4, 255),
    "Unlabeled": TRANSPARENT,
}

# The colours the Dubai masks really use; the dataset's classes.json lists other ones.
DUBAI = ClassTable(
    names=("Building", "Land", "Road", "Vegetation", "Water", "Unlabeled"),
    colors=(
        (0x3C, 0x10, 0x98),
        (0x84, 0x29, 0xF6),
        (0x6E, 0xC1, 0xE4),
        (0xFE, 0xDD, 0x3A),
        (0xE2, 0xA9, 0x29),
        (0x9B, 0x9B, 0x9B),
    ),
    background=("Unlabeled",),
)
