"""Reading images and masks with clear errors, finding image files, saving arrays as images."""

from __future__ import annotations

import errno
import os
import re
import struct
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import AerialSegError
from .files import write_atomic

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


MAX_PIXELS = 150_000_000  # decompression-bomb guard (about 12 000 x 12 000); --max-pixels


@contextmanager
def _pillow_limit(max_pixels: int | None):
    """Pillow's own decompression-bomb guard is a process-wide setting: set it to our limit
    for this one call and put back what the process had."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():  # we give our own error
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _open(path: Path, max_pixels: int, hint: str = "") -> Image.Image:
    try:
        # the header alone: Pillow's own bomb check is ours, made below with the real size
        with _pillow_limit(None):
            im = Image.open(path)
        if im.width * im.height > max_pixels:
            raise AerialSegError(
                f"{path}: {im.width}x{im.height} is over the {max_pixels:,}-pixel limit"
                + (f" ({hint} raises it)" if hint else "")
            )
        with _pillow_limit(max_pixels):
            im.load()
        return im
    except AerialSegError:
        raise
    except Image.DecompressionBombError:
        raise AerialSegError(f"{path}: image is over the {max_pixels:,}-pixel limit") from None
    except FileNotFoundError:
        raise AerialSegError(f"{path}: no such file") from None
    except PermissionError:
        raise AerialSegError(f"{path}: cannot read image (permission denied)") from None
    except MemoryError:
        raise AerialSegError(f"{path}: cannot read image (not enough memory)") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        if isinstance(e, OSError) and e.errno == errno.ELOOP:
            reason = "symbolic link loop"
        raise AerialSegError(f"{path}: cannot read image ({reason})") from None


def read_image(
    path: str | Path, strict: bool = False, max_pixels: int = MAX_PIXELS, hint: str = ""
) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, with EXIF orientation applied.

    ``strict`` (used for training data) refuses anything but 8-bit RGB: a grayscale, RGBA or
    16-bit training image usually means the wrong file, and silently converting it would hide
    that. Otherwise alpha is dropped, grey is replicated and 16-bit is rescaled. Images over
    ``max_pixels`` are refused before they are decoded; ``hint`` names the flag that raises
    the limit, for the error message.
    """
    path = Path(path)
    im = _open(path, max_pixels, hint)
    if strict:
        if im.mode != "RGB":
            raise AerialSegError(
                f"{path}: image mode is {im.mode} ({_describe(im.mode)}); training images must "
                "be 8-bit RGB - convert it first"
            )
        return np.asarray(im)  # read-only view: one copy of the pixels, not two
    ImageOps.exif_transpose(im, in_place=True)  # no copy of a possibly huge image
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return np.repeat(a.round().astype(np.uint8)[..., None], 3, axis=2)
    if im.mode == "RGB":
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))


def open_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A picture as Pillow reads it, in its own mode (16-bit stays 16-bit), EXIF orientation
    applied: for :func:`to_rgb`, which scales deep values as rasters are scaled."""
    im = _open(Path(path), max_pixels)
    ImageOps.exif_transpose(im, in_place=True)
    return im


# Pillow modes whose pixels numpy reads as they are; any other mode (RGBA, P, CMYK, LA, 1...)
# is converted to RGB by Pillow, which knows its palette or colour space.
_AS_IS = ("RGB", "L", "I;16", "I;16L", "I;16B", "I", "F")


def to_rgb(image, bands=None, stretch=None) -> np.ndarray:
    """A picture in memory -> (H, W, 3) uint8 RGB, as ``segment`` reads a file.

    ``image``: a PIL image of any mode, or an array (H, W), (H, W, bands) or (bands, H, W) as
    rasterio reads it (the bands axis is the shorter of the first and the last), of any integer
    or float type. ``bands``: three 1-based band numbers for red, green and blue (one: grey);
    default the first three, or the one grey band. Values that are not 8-bit are scaled to
    0-255 per band from their percentiles 2 and 98, by the GIS raster reader itself (so as
    ``aerialseg segment`` scales a raster; it needs the geo extra); ``stretch`` (a
    :class:`~aerialseg.gis.stretch.Scale` or its text, "p2,p98" | "LOW,HIGH" | "none") chooses
    another scaling, for 8-bit values too.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image if image.mode in _AS_IS else image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise AerialSegError(
            f"expected a picture (a PIL image or a numpy array), got {type(image).__name__}"
        )
    shape = image.shape
    if image.ndim == 2:
        image = image[None]
    elif image.ndim == 3 and shape[2] < shape[0]:
        image = image.transpose(2, 0, 1)  # (H, W, bands) -> (bands, H, W), a view
    if image.ndim != 3 or 0 in image.shape:
        raise AerialSegError(
            f"expected an image array (H, W), (H, W, 3) or (bands, H, W), got shape {shape}"
        )
    if image.dtype.kind not in "uif":
        raise AerialSegError(f"expected integer or float pixel values, got {image.dtype}")
    data = image[_band_rows(bands, len(image), shape)]
    if data.dtype == np.uint8 and stretch is None:
        return np.ascontiguousarray(data.transpose(1, 2, 0))
    return _stretched(data, stretch)


def _band_rows(bands, n: int, shape: tuple) -> list[int]:
    """0-based rows of the red, green and blue bands among ``n``."""
    if bands is None:
        if n == 2:
            raise AerialSegError(
                f"an image of shape {shape} has 2 bands, not 1 or 3+; pick them with bands="
            )
        bands = (1, 1, 1) if n == 1 else (1, 2, 3)
    bands = tuple(bands) * 3 if len(tuple(bands)) == 1 else tuple(bands)
    if len(bands) != 3 or not all(isinstance(b, (int, np.integer)) and 1 <= b <= n for b in bands):
        raise AerialSegError(
            f"bands={bands}: expected three band numbers from 1 to {n} (the image's bands)"
        )
    return [b - 1 for b in bands]


_GDAL_TYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def _stretched(data: np.ndarray, stretch) -> np.ndarray:
    """(3, H, W) values of any type -> (H, W, 3) uint8 through an in-memory GeoTIFF read by
    :class:`~aerialseg.gis.rasters.RasterSource`: the percentiles, clipping and rounding are
    exactly those of a raster given to the CLI, in one place."""
    from ..gis.rasters import RasterSource, rasterio_or_none
    from ..gis.stretch import Scale

    rio = rasterio_or_none()
    if rio is None:
        raise AerialSegError(
            f"scaling {data.dtype} values to 8 bits needs the geo extra: "
            "pip install 'aerialseg[geo]'"
        )
    if not isinstance(stretch, Scale):
        stretch = Scale.parse(stretch)
    if data.dtype.name in _GDAL_TYPES:
        data = data.astype(data.dtype.newbyteorder("="), copy=False)  # GDAL writes native order
    else:  # int8, 64-bit integers, float16: as float64, which holds their values
        data = data.astype(np.float64)
    from rasterio.errors import NotGeoreferencedWarning

    _, h, w = data.shape
    with warnings.catch_warnings():  # an array has no georeference, and needs none
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rio.MemoryFile() as mem:
            with mem.open(driver="GTiff", count=3, height=h, width=w, dtype=data.dtype) as dst:
                dst.write(data)
            with RasterSource(mem.name, (1, 2, 3), stretch) as src:
                return src.read_all()[0]


def _describe(mode: str) -> str:
    return {
        "L": "grayscale",
        "LA": "grayscale with alpha",
        "RGBA": "has an alpha channel",
        "P": "palette",
        "CMYK": "CMYK",
        "I;16": "16-bit",
        "I": "32-bit integer",
        "F": "floating point",
    }.get(mode, "not 8-bit RGB")


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask: a colour mask as (H, W, 3) uint8 (palette PNGs expanded to their colours),
    or a single-band 8-bit image of class indices (255 = unlabelled) as (H, W) uint8."""
    path = Path(path)
    im = _open(path, MAX_PIXELS)
    if im.mode == "L":
        return np.array(im)
    if im.mode not in ("RGB", "P", "RGBA"):
        raise AerialSegError(
            f"{path}: mask mode is {im.mode} ({_describe(im.mode)}); masks must be RGB, "
            "palette, or 8-bit single-band class indices"
        )
    return np.array(im.convert("RGB"))


UNLABELLED = 255  # in a mask of class indices: a pixel nobody labelled (ignored, not a class)


def index_labels(
    values: np.ndarray, num_classes: int, path: str | Path, strict: bool = False
) -> tuple[np.ndarray, int]:
    """Class indices (H, W) -> labels (255 = ignored) and the count of values that are no
    class (neither < ``num_classes`` nor 255). ``strict`` refuses such values instead: in a
    user's sparse labels they mean a wrong class table or a wrong file, not "unlabelled"."""
    bad = (values >= num_classes) & (values != UNLABELLED)
    count = int(np.count_nonzero(bad))
    if count and strict:
        y, x = np.argwhere(bad)[0]
        raise AerialSegError(
            f"{path}: label value {int(values[y, x])} at x={x}, y={y} is no class "
            f"({num_classes} classes: 0-{num_classes - 1}, {UNLABELLED} = unlabelled; "
            f"{count:,} such pixels)"
        )
    return np.where(bad, UNLABELLED, values).astype(np.uint8), count


def save_image(dest: str | Path, array: np.ndarray) -> Path:
    """Save a uint8 array as PNG/JPEG (by suffix), atomically."""
    dest = Path(dest)
    fmt = "JPEG" if dest.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    return write_atomic(dest, lambda p: Image.fromarray(array).save(p, format=fmt))


def natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def collect_images(
    inputs: list[str], skipped: list[str] | None = None
) -> tuple[list[tuple[Path, str]], list[str]]:
    """(image path, output name) for every file given or found under a folder given, and a
    line for every input that cannot be one (missing, a broken link or a link loop).

    Under a folder, masks/ folders are skipped and the relative path becomes the output name,
    so 'Tile 1/images/a.jpg' and 'Tile 2/images/a.jpg' don't clash; a file given by itself is
    named by its stem. A file given twice is done once. Inputs that would still share a name
    get distinct ones by :func:`distinct_names`. ``skipped`` gets a line per folder holding
    files that are not images (a PDF...; a GIS raster's side files are not counted)."""
    found: list[tuple[Path, str]] = []
    failures: list[str] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            others = []
            for f in sorted(p.rglob("*"), key=lambda f: natural_key(str(f))):
                if _not_an_image(f, p):
                    others.append(f.relative_to(p).as_posix())
                if (
                    f.suffix.lower() not in IMAGE_SUFFIXES
                    or "masks" in f.relative_to(p).parent.parts
                    or f.name.startswith(".")
                    or f.is_dir()
                ):
                    continue
                if f.is_file():
                    found.append((f, str(f.relative_to(p).with_suffix(""))))
                else:
                    failures.append(f"{f}: {_not_a_file(f)}")
            if others and skipped is not None:
                skipped.append(_skipped_line(p, others))
        elif p.is_file():
            found.append((p, p.stem))
        else:
            failures.append(f"{p}: {_not_a_file(p)}")
    seen, unique = set(), []
    for f, name in found:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append((f, name))
    return distinct_names(unique), failures


# beside a GIS raster or a dataset: never reported as skipped
SIDE_FILES = (".aux.xml", ".ovr", ".prj", ".qml", ".msk", ".wld", ".tfw", ".jgw", ".pgw", ".json")


def _skipped_line(folder: Path, names: list[str]) -> str:
    more = f" and {len(names) - 3} more" if names[3:] else ""
    n = len(names)
    return f"{folder}: skipped {n} file{'s' * (n != 1)}, not images: {', '.join(names[:3])}{more}"


def _not_an_image(f: Path, top: Path) -> bool:
    """A file under folder ``top`` that is skipped for not being an image (masks/ folders,
    hidden files and side files aside)."""
    name = f.name.lower()
    return (
        f.suffix.lower() not in IMAGE_SUFFIXES
        and not name.startswith(".")
        and not name.endswith(SIDE_FILES)
        and "masks" not in f.relative_to(top).parent.parts
        and f.is_file()
    )


def _not_a_file(p: Path) -> str:
    if p.is_symlink():
        try:
            p.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 says a loop this way
            return "symbolic link loop"
        except OSError as e:
            return "symbolic link loop" if e.errno == errno.ELOOP else "broken symbolic link"
        return "not a regular file"
    return "no such file or folder" if not p.exists() else "not a regular file"


def distinct_names(items: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Give inputs that would share an output name distinct, predictable ones.

    Each group of inputs with the same name (compared case-insensitively, as some file
    systems do) is renamed to their paths from the deepest folder they share, without the
    extension (``a/x.jpg`` and ``b/x.jpg`` -> ``a/x`` and ``b/x``), or with it where only the
    extension differs (``x.jpg`` and ``x.png`` -> ``x.jpg`` and ``x.png``). Whatever still
    clashes after that gets ``-2``, ``-3``... in input order. Names of inputs that clash with
    nothing are left as they are.
    """
    groups: dict[str, list[int]] = {}
    for i, (_, name) in enumerate(items):
        groups.setdefault(name.casefold(), []).append(i)
    names = [name for _, name in items]
    for idx in groups.values():
        if len(idx) < 2:
            continue
        paths = [os.path.abspath(items[i][0]) for i in idx]
        common = os.path.commonpath(paths)
        rel = [Path(os.path.relpath(p, common)) for p in paths]
        short = [r.with_suffix("").as_posix() for r in rel]
        for i, r, n in zip(idx, rel, short):
            names[i] = n if [s.casefold() for s in short].count(n.casefold()) == 1 else r.as_posix()
    taken: set[str] = set()
    for i, name in enumerate(names):
        k, unique = 1, name
        while unique.casefold() in taken:
            k += 1
            unique = f"{name}-{k}"
        taken.add(unique.casefold())
        names[i] = unique
    return [(p, n) for (p, _), n in zip(items, names)]
