"""Reading images and masks with clear errors, finding image files, saving arrays as images."""

from __future__ import annotations

import re
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
def _pillow_limit(max_pixels: int):
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


def _open(path: Path, max_pixels: int) -> Image.Image:
    try:
        with _pillow_limit(max_pixels):
            im = Image.open(path)
        if im.width * im.height > max_pixels:
            raise AerialSegError(
                f"{path}: {im.width}x{im.height} is over the {max_pixels:,}-pixel limit"
            )
        im.load()
        return im
    except AerialSegError:
        raise
    except Image.DecompressionBombError:
        raise AerialSegError(f"{path}: image is over the {max_pixels:,}-pixel limit") from None
    except FileNotFoundError:
        raise AerialSegError(f"{path}: no such file") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise AerialSegError(f"{path}: cannot read image ({e})") from None


def read_image(path: str | Path, strict: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, with EXIF orientation applied.

    ``strict`` (used for training data) refuses anything but 8-bit RGB: a grayscale, RGBA or
    16-bit training image usually means the wrong file, and silently converting it would hide
    that. Otherwise alpha is dropped, grey is replicated and 16-bit is rescaled. Images over
    ``max_pixels`` are refused before they are decoded.
    """
    path = Path(path)
    im = _open(path, max_pixels)
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


def read_mask_rgb(path: str | Path) -> np.ndarray:
    """Read a colour mask as (H, W, 3) uint8; palette PNGs are expanded to their colours."""
    path = Path(path)
    im = _open(path, MAX_PIXELS)
    if im.mode not in ("RGB", "P", "RGBA"):
        raise AerialSegError(
            f"{path}: mask mode is {im.mode} ({_describe(im.mode)}); masks must be RGB or palette"
        )
    return np.array(im.convert("RGB"))


def save_image(dest: str | Path, array: np.ndarray) -> Path:
    """Save a uint8 array as PNG/JPEG (by suffix), atomically."""
    dest = Path(dest)
    fmt = "JPEG" if dest.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    return write_atomic(dest, lambda p: Image.fromarray(array).save(p, format=fmt))


def natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def collect_images(inputs: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(image path, output name) for every file given or found under a folder given, and the
    inputs that do not exist. Under a folder, masks/ folders are skipped and the relative path
    becomes the output name, so 'Tile 1/images/a.jpg' and 'Tile 2/images/a.jpg' don't clash."""
    from .images import IMAGE_SUFFIXES, natural_key

    found, missing = [], []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            files = [
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in IMAGE_SUFFIXES
                and "masks" not in f.parent.parts
                and not f.name.startswith(".")
            ]
            for f in sorted(files, key=lambda f: natural_key(str(f))):
                found.append((f, str(f.relative_to(p).with_suffix(""))))
        elif p.is_file():
            found.append((p, p.stem))
        else:
            missing.append(f"{p}: no such file or folder")
    return found, missing
