"""The bad-input corpus, made in code: every kind of file a user might hand aerialseg by
mistake, and the places its outputs might meet (a full disk, an unwritable folder).

Each maker writes into a folder it is given and returns the path to hand to the command.
The tables map a kind's name to its maker and what the one error line must say; the test
modules beside this one run them against every command that reads such a file. Nothing here
comes from the dataset: every file is generated, a few bytes to a few KB each.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..helpers import make_scene, write_pair

Maker = Callable[[Path], Path]


def photo(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return make_scene(h, w, seed)[0]


def _encoded(fmt: str, h: int = 64, w: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(h, w)).save(buf, format=fmt)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def save(path: Path, a: np.ndarray | Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (a if isinstance(a, Image.Image) else Image.fromarray(a)).save(path)
    return path


# ---------------------------------------------------------------------------- image files


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid PNG signature and IHDR chunk claiming width x height RGB pixels (30 GB
    decoded), then a tiny IDAT: a reader must refuse it from the header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return _write(path, png)


def mode_image(mode: str, path: Path, h: int = 40, w: int = 48) -> Path:
    """A photo in Pillow mode ``mode``, in a format that keeps that mode (checked)."""
    rgb = Image.fromarray(photo(h, w))
    grey = np.asarray(rgb.convert("L"))
    im = {
        "I;16": lambda: Image.fromarray((grey.astype(np.uint16) * 257).astype(np.uint16)),
        "F": lambda: Image.fromarray(grey.astype(np.float32) / 255),
        "P": lambda: rgb.quantize(16),
    }.get(mode, lambda: rgb.convert(mode))()
    save(path, im)
    assert Image.open(path).mode == mode, (mode, Image.open(path).mode)
    return path


def exif_rotated(folder: Path) -> Path:
    im = Image.fromarray(photo(40, 64))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": shown 40 wide, 64 high
    path = folder / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    return path


def symlink_loop(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(path.name, path)  # points at itself: every open fails with ELOOP
    return path


# A name that is not valid UTF-8 (Latin-1 bytes, as from an old archive): Python keeps the
# bytes as surrogate escapes, which no encoder accepts, so printing or drawing it naively
# fails.
NON_UTF8_NAME = os.fsdecode(b"caf\xe9 \xff.png")
SPACED_NAME = "  an image  with spaces .png"


def unreadable(path: Path) -> Path:
    """A valid image without read permission. Root reads it anyway: the tests then stand in
    for the kernel (the ``unreadable`` fixture in conftest.py)."""
    save(path, photo(32, 40))
    path.chmod(0)
    return path


# Image files no command can use: name -> (maker, what the one error line says).
BAD_IMAGES: dict[str, tuple[Maker, str]] = {
    "empty-jpg": (lambda d: _write(d / "empty.jpg", b""), "cannot read image"),
    "empty-png": (lambda d: _write(d / "empty.png", b""), "cannot read image"),
    "empty-tif": (lambda d: _write(d / "empty.tif", b""), "cannot read image"),
    "truncated-jpg": (lambda d: _write(d / "cut.jpg", _encoded("JPEG")[:300]), "cannot read image"),
    "truncated-png": (lambda d: _write(d / "cut.png", _encoded("PNG")[:200]), "cannot read image"),
    "truncated-tif": (lambda d: _write(d / "cut.tif", _encoded("TIFF")[:500]), "cannot read image"),
    "text-named-jpg": (lambda d: _write(d / "notes.jpg", b"just some text\n"), "cannot read image"),
    "png-bomb-100000x100000": (lambda d: png_bomb(d / "bomb.png"), "100000x100000 is over the"),
    "symlink-loop": (lambda d: symlink_loop(d / "loop.jpg"), "symbolic link loop"),
    "unreadable": (lambda d: unreadable(d / "secret.png"), "permission denied"),
}


def truncated_geotiff(path: Path) -> Path:
    """A georeferenced (UTM, 0.5 m) 3-band GeoTIFF cut in half: ``segment`` reads such
    files through the GIS path (rasterio) where it is installed."""
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(0).integers(0, 256, (3, 128, 128), dtype=np.uint8)
    utm = from_origin(500_000, 2_800_000, 0.5, 0.5)
    profile = dict(driver="GTiff", width=128, height=128, count=3, dtype="uint8")
    profile.update(crs="EPSG:32640", transform=utm)
    with rasterio.open(path, "w", **profile) as f:
        f.write(a)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


try:  # the GIS extra: where it is installed, GeoTIFFs are in the corpus too
    import rasterio  # noqa: F401

    BAD_IMAGES["truncated-geotiff"] = (
        lambda d: truncated_geotiff(d / "cut_geo.tif"),
        "cannot read",
    )
except ImportError:
    pass

# Odd but valid images. The lenient readers (segment, classify predict, the app) convert them;
# the strict one (training data) refuses the non-RGB ones by name. name -> (maker, (H, W)).
ODD_IMAGES: dict[str, tuple[Maker, tuple[int, int]]] = {
    "1x1": (lambda d: save(d / "dot.png", np.full((1, 1, 3), 90, np.uint8)), (1, 1)),
    "1x5000": (lambda d: save(d / "line.png", np.full((1, 5000, 3), 90, np.uint8)), (1, 5000)),
    "grayscale": (lambda d: mode_image("L", d / "grey.png"), (40, 48)),
    "gray-alpha": (lambda d: mode_image("LA", d / "grey_alpha.png"), (40, 48)),
    "palette": (lambda d: mode_image("P", d / "palette.png"), (40, 48)),
    "cmyk": (lambda d: mode_image("CMYK", d / "cmyk.jpg"), (40, 48)),
    "rgba": (lambda d: mode_image("RGBA", d / "rgba.png"), (40, 48)),
    "16-bit": (lambda d: mode_image("I;16", d / "deep.png"), (40, 48)),
    "float": (lambda d: mode_image("F", d / "float.tif"), (40, 48)),
    "exif-rotated": (exif_rotated, (64, 40)),
    "non-utf8-name": (lambda d: save(d / NON_UTF8_NAME, photo(32, 40)), (32, 40)),
    "spaces-in-name": (lambda d: save(d / SPACED_NAME, photo(32, 40)), (32, 40)),
}


def good_image(folder: Path, name: str = "good.png") -> Path:
    return save(folder / name, photo(48, 56, seed=5))


# ---------------------------------------------------------------------------- datasets


def good_dataset(root: Path, n: int = 4, size: int = 64) -> Path:
    """``root/images`` + ``root/masks``: n pairs of size x size, every class present."""
    for i in range(n):
        photo, labels = make_scene(size, size, seed=100 + i)
        write_pair(root, f"img_{i}", photo, labels)
    return root


def _with(change: Callable[[Path], object]) -> Maker:
    """A good dataset under ``folder/data`` with one thing changed by ``change(root)``."""

    def make(folder: Path) -> Path:
        root = good_dataset(folder / "data")
        change(root)
        return root

    return make


def _rm(path: Path) -> None:
    if path.is_dir():
        for p in path.iterdir():
            p.unlink()
        path.rmdir()
    else:
        path.unlink()


def _unknown_colours(root: Path) -> None:
    for m in (root / "masks").iterdir():
        save(m, np.full((64, 64, 3), (123, 45, 67), np.uint8))


def _empty_pairs(root: Path) -> None:
    for sub in ("images", "masks"):
        for p in (root / sub).iterdir():
            p.unlink()


# Datasets no command can train or score on: name -> (maker, the file or folder the line
# names (a path fragment), what it says).
BAD_DATASETS: dict[str, tuple[Maker, str, str]] = {
    "images-without-masks-folder": (
        _with(lambda r: _rm(r / "masks")),
        "data",
        "has images/ but no masks/ folder",
    ),
    "masks-without-images-folder": (
        _with(lambda r: _rm(r / "images")),
        "data",
        "has masks/ but no images/ folder",
    ),
    "image-without-mask": (
        _with(lambda r: save(r / "images" / "extra.jpg", photo())),
        "extra.jpg",
        "image has no mask",
    ),
    "mask-without-image": (
        _with(lambda r: (r / "images" / "img_2.jpg").unlink()),
        "img_2.png",
        "mask has no image",
    ),
    "mask-of-another-size": (
        _with(lambda r: save(r / "masks" / "img_1.png", np.zeros((32, 48, 3), np.uint8))),
        "img_1.png",
        "mask is 48x32 but its image is 64x64",
    ),
    "masks-of-unknown-colours-only": (
        _with(_unknown_colours),
        "data",
        "no mask pixel has a class colour",
    ),
    "empty-folder": (lambda d: _mkdir(d / "data"), "data", "no image/mask pairs found"),
    "empty-images-and-masks": (_with(_empty_pairs), "data", "no image/mask pairs found"),
    "data-is-a-file": (lambda d: _write(d / "data", b"x"), "data", "not a folder"),
    "missing-folder": (lambda d: d / "nowhere", "nowhere", "no such data folder"),
    "truncated-image": (
        _with(lambda r: _write(r / "images" / "img_1.jpg", _encoded("JPEG")[:300])),
        "img_1.jpg",
        "cannot read image",
    ),
    "text-named-png-mask": (
        _with(lambda r: _write(r / "masks" / "img_3.png", b"a mask, honest\n")),
        "img_3.png",
        "cannot read image",
    ),
    "grayscale-image": (
        _with(lambda r: _replace(r / "images" / "img_0.jpg", lambda p: mode_image("L", p, 64, 64))),
        "img_0.png",
        "image mode is L (grayscale)",
    ),
    "16-bit-mask": (
        _with(lambda r: mode_image("I;16", r / "masks" / "img_0.png", 64, 64)),
        "img_0.png",
        "mask mode is I;16",
    ),
    "png-bomb-mask": (
        _with(lambda r: png_bomb(r / "masks" / "img_0.png")),
        "img_0.png",
        "100000x100000 is over the",
    ),
    "symlink-loop-image": (
        _with(lambda r: symlink_loop(r / "images" / "loop.jpg")),
        "loop.jpg",
        "broken symbolic link",
    ),
    "two-images-one-stem": (
        _with(lambda r: save(r / "images" / "img_0.png", photo())),
        "img_0",
        "two files named img_0.*",
    ),
    "unreadable-image": (
        _with(lambda r: _replace(r / "images" / "img_2.jpg", unreadable)),
        "img_2.png",
        "permission denied",
    ),
}


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True)
    return p


def _replace(jpg: Path, make: Callable[[Path], object]) -> None:
    """Put ``make(path)``'s PNG in the place of an image."""
    jpg.unlink()
    make(jpg.with_suffix(".png"))


# ---------------------------------------------------------------------------- model files


def _header(meta: dict | None, tensors: dict | None = None) -> bytes:
    d = dict(tensors or {})
    if meta is not None:
        d["__metadata__"] = meta
    return json.dumps(d).encode()


def safetensors_claiming(path: Path, nbytes: int) -> Path:
    """A header length of ``nbytes`` (gigabytes) in a 100-byte file."""
    return _write(path, struct.pack("<Q", nbytes) + b"{" + b" " * 99)


def tensor_claiming_gigabytes(path: Path) -> Path:
    """A well-formed header whose one tensor claims 4 GB of data the file does not hold."""
    meta = {"aerialseg": json.dumps({"format": "aerialseg/1", "model": {"name": "unet"}})}
    tensors = {"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 4 << 30]}}
    h = _header(meta, tensors)
    return _write(path, struct.pack("<Q", len(h)) + h + b"\0" * 64)


class PickleBomb:
    """Unpickling this runs ``touch <marker>``: a checkpoint that must never be executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def pickle_checkpoint(path: Path) -> Path:
    """A torch.save-style pickle whose loading runs code (it would create ``PWNED`` beside
    it): refused without being run."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": PickleBomb(path.parent / "PWNED")}, path)
    return path


def _truncated(good: Path, keep: float) -> Maker:
    def make(folder: Path) -> Path:
        data = good.read_bytes()
        return _write(folder / "cut.safetensors", data[: int(len(data) * keep)])

    return make


def _corrupt_metadata(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path = folder / "corrupt.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"aerialseg": "{not json"})
    return path


def _foreign(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path = folder / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    return path


def _mismatched(good: Path) -> Maker:
    """aerialseg metadata describing a wider network than the weights beside it."""

    def make(folder: Path) -> Path:
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        with safe_open(str(good), framework="pt") as f:
            meta = json.loads(f.metadata()["aerialseg"])
        meta["model"]["base_filters"] = 2 * meta["model"].get("base_filters", 4)
        path = folder / "mismatch.safetensors"
        save_file(load_file(str(good)), str(path), metadata={"aerialseg": json.dumps(meta)})
        return path

    return make


def bad_models(good: Path, other_task: Path, other_task_says: str) -> dict[str, tuple[Maker, str]]:
    """Model files no command can use, built around ``good`` (a working checkpoint of the
    command's task) and ``other_task`` (one of the other task): name -> (maker, message)."""
    return {
        "missing": (lambda d: d / "missing.safetensors", "no such model file"),
        "a-folder": (lambda d: _mkdir(d / "model.safetensors"), "not a model file"),
        "empty": (lambda d: _write(d / "empty.safetensors", b""), "not an aerialseg model"),
        "text": (lambda d: _write(d / "m.safetensors", b"hello\n" * 10), "not an aerialseg model"),
        "truncated-half": (_truncated(good, 0.5), "not an aerialseg model"),
        "truncated-in-header": (_truncated(good, 0.002), "not an aerialseg model"),
        "header-claims-8-gigabytes": (
            lambda d: safetensors_claiming(d / "giga.safetensors", 8 << 30),
            "not an aerialseg model",
        ),
        "tensor-claims-4-gigabytes": (
            lambda d: tensor_claiming_gigabytes(d / "giga_tensor.safetensors"),
            "not an aerialseg model",
        ),
        "foreign-safetensors": (_foreign, "not an aerialseg model"),
        "corrupt-metadata": (_corrupt_metadata, "metadata is corrupt"),
        "weights-do-not-fit": (_mismatched(good), "weights do not fit"),
        "pickle-that-runs-code": (
            lambda d: pickle_checkpoint(d / "evil.safetensors"),
            "not an aerialseg model",
        ),
        "checkpoint-of-the-other-task": (lambda d: other_task, other_task_says),
    }


MODEL_KINDS = tuple(bad_models(Path("."), Path("."), ""))  # the names, for parametrize


# ---------------------------------------------------------------------------- config files

# Config files no training run can start from: name -> (file name, content, message).
BAD_CONFIGS: dict[str, tuple[str, str, str]] = {
    "unknown-key": ("c.json", '{"colour": "blue"}', "unknown config keys: colour"),
    "string-for-float": ("c.json", '{"lr": "fast"}', "lr must be a float, not 'fast'"),
    "null-for-float": ("c.json", '{"lr": null}', "lr must be set, not null"),
    "infinite-float": ("c.json", '{"lr": 1e999}', "lr must be a finite number"),
    "float-for-int": ("c.json", '{"epochs": 2.5}', "epochs must be an int, not 2.5"),
    "bool-for-int": ("c.json", '{"epochs": true}', "epochs must be an int, not True"),
    "string-for-bool": ("c.yaml", "augment: 'yes'\n", "augment must be a bool"),
    "negative-epochs": ("c.json", '{"epochs": -1}', "epochs must be >= 0, not -1"),
    "zero-epochs": ("c.json", '{"epochs": 0}', "no epoch to run"),
    "zero-minutes": ("c.json", '{"minutes": 0}', "minutes must be > 0, not 0"),
    "negative-minutes": ("c.yaml", "minutes: -1\n", "minutes must be > 0, not -1"),
    "zero-batch-size": ("c.json", '{"batch_size": 0}', "batch size must be >= 1, not 0"),
    "negative-seed": ("c.json", '{"seed": -1}', "seed must be >= 0, not -1"),
    "list-of-wrong-items": ("c.json", '{"val_images": [1, 2]}', "must be a list of str"),
    "not-a-mapping": ("c.json", "[1, 2]", "must be a mapping"),
    "broken-json": ("c.json", '{"epochs": 1,', "cannot parse config"),
    "broken-yaml": ("c.yaml", "epochs: [1\n", "cannot parse config"),
    "not-utf8": ("c.yaml", "lr: caf\udce9", "cannot read config"),
}


def write_config(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


# Flag values refused before anything loads: name -> (flags, message).
BAD_FLAGS: dict[str, tuple[list[str], str]] = {
    "batch-size-0": (["--batch-size", "0"], "batch size must be >= 1"),
    "epochs-negative": (["--epochs", "-1"], "epochs must be >= 0"),
    "minutes-negative": (["--minutes", "-1"], "minutes must be > 0"),
    "lr-not-a-number": (["--lr", "fast"], "invalid float value"),
    "epochs-and-minutes": (["--epochs", "2", "--minutes", "1"], "not both"),
}


# ---------------------------------------------------------------------------- CIFAR files


def evil_cifar(root: Path, marker: Path) -> Path:
    """``cifar-100-python/`` whose ``meta`` pickle would run ``touch marker``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("meta", "train", "test"):
        (folder / name).write_bytes(pickle.dumps({b"x": PickleBomb(marker)}, protocol=2))
    return root
