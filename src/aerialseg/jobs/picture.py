"""A plain picture (PNG, JPEG, TIFF without georeference) segmented in bounded memory.

Read whole, a 10 000² PNG and its maps took 2.23 GiB; streamed, 0.80-0.82 GiB, as a GeoTIFF
does (benchmarks/segment_memory.py, docs/results.md). Nothing the size of the picture is ever
held. Three steps, each streaming:

1. GDAL decodes the picture top to bottom, once, into a tiled zstd GeoTIFF beside the outputs.
   Why a copy: the windows are run in column chunks, each top to bottom
   (:func:`~aerialseg.inference.georaster.stream_raster`), and GDAL's PNG and JPEG readers
   decode from the start again for every chunk (and for every backward step a cache too small
   to hold it misses).
2. The windows run over the copy as over a GeoTIFF; the sink writes the labels into a plain
   tiled scratch GeoTIFF, counts the classes, sums the confidence and keeps the figure's
   decimated labels (the probabilities, when asked for, go row by row into their .npy).
3. Labels and copy are read back in full-width strips: the label and colour PNGs are encoded
   row by row (:mod:`aerialseg.io.pngstream`), the overlay JPEG band by band
   (:mod:`aerialseg.io.jpegstream`: GDAL's JPEG writer held 3 bytes a pixel, 1.2 GB at
   20 000²), and the figure and the blank-picture check get their decimated pixels - the
   very ones the in-memory path takes, so figure and warning are the same.

The label pixels are the in-memory path's (where column chunks meet, to float rounding: see
:mod:`aerialseg.inference.georaster`), the statistics and file set the same; PNG and JPEG
bytes come from other encoders. Only 8-bit RGB pictures without an EXIF rotation or a
transparent colour come this way, and only at scale 1: the rest are read whole
(:func:`streams` says which).
"""

from __future__ import annotations

import math
import os
import secrets
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from ..errors import AerialSegError
from ..gis.rasters import gdal_reason, rasterio_or_none
from ..io.outputs import (
    class_counts_stats,
    display_name,
    figure_step,
    side_by_side,
    staged,
    write_stats,
)
from ..io.outputs import overlay as paint_overlay
from .image import model_stats, reserve_space

# Pictures of at least this many pixels stream (benchmarks/segment_memory.py); the environment
# variable AERIALSEG_STREAM_PIXELS sets another (0: all; the benchmark's baseline: a huge one).
STREAM_PIXELS = 16_000_000
TILE = 256  # scratch GeoTIFF tiles; the read-back strips are one row of tiles
OVERLAY_PIXELS = 1_000_000  # painted at a time: a 256-row strip of a 40 000-wide one is 10 M
BLANK_SAMPLE = 250_000  # pixels the blank-picture check looks at (confidence.unusual)


def streams(
    seg, path: Path, max_pixels: int | None = None, min_pixels: int | None = None
) -> tuple[int, int] | None:
    """(height, width) when ``path`` is to be segmented here: GDAL (the geo extra) is there,
    ``seg`` runs at scale 1, and the picture is plain 8-bit RGB of at least ``min_pixels``
    that GDAL reads as Pillow does. None: read it whole. Over ``max_pixels`` (--max-pixels)
    also None: the in-memory reader refuses it from its header, as before - the guard against
    a small file claiming a huge picture holds here too (it would fill the disk, and take
    hours)."""
    from PIL import Image

    from ..io.images import _pillow_limit

    if seg.scales != (1.0,):
        return None
    if min_pixels is None:
        min_pixels = int(os.environ.get("AERIALSEG_STREAM_PIXELS", STREAM_PIXELS))
    try:
        with _pillow_limit(None), Image.open(path) as im:  # the header: Pillow's bomb check off
            size, mode, info = (im.height, im.width), im.mode, im.info
            if im.format == "PNG" and _png_metadata_after_pixels(path):
                return None  # Pillow would decode the whole picture to see it: as before
            # PNG's getexif() decodes the whole picture, for chunks after the pixels (none here)
            exif = Image.Image.getexif(im) if im.format == "PNG" else im.getexif()
            turned = exif.get(0x0112, 1) not in (0, 1)  # EXIF orientation
    except Exception:  # noqa: BLE001 - unreadable: the in-memory reader says why
        return None
    if mode != "RGB" or turned or "transparency" in info or size[0] * size[1] < min_pixels:
        return None
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        return None
    if info.get("interlace") or info.get("progressive"):
        return None  # GDAL decodes these whole, or over and over
    if rasterio_or_none() is None:
        return None
    try:
        with _quiet_open(path) as src:
            same = (src.height, src.width) == size and src.count == 3
            same = same and set(src.dtypes) == {"uint8"} and src.crs is None
    except AerialSegError:
        return None
    return size if same else None


def _png_metadata_after_pixels(path: Path) -> bool:
    """Whether the PNG has EXIF or text chunks after its pixel data (IDAT), where an EXIF
    rotation may hide: its chunks are walked, their data skipped."""
    import struct

    with open(path, "rb") as f:
        f.seek(8)  # the signature
        seen_pixels = False
        while len(head := f.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                return False
            if kind == b"IDAT":
                seen_pixels = True
            elif seen_pixels and kind in (b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
                return True
            f.seek(length + 4, os.SEEK_CUR)  # data and CRC
    return False


def segment_picture_streamed(
    seg,
    path: Path,
    paths: dict[str, Path],
    tta: bool = False,
    opacity: float = 0.5,
    gsd: float | None = None,
    on_window=None,
    chunk: int | None = None,
) -> dict:
    """Segment the picture at ``path`` (one :func:`streams` accepted) and write the files of
    :func:`~aerialseg.jobs.image.segment_image_to_files` to ``paths``, all or none, in
    bounded memory.
    Returns the statistics written to the JSON. ``chunk``: the column chunks' width (tests)."""
    from ..inference.familiarity import raster_familiarity
    from ..inference.georaster import CHUNK, stream_raster

    if not 0 <= opacity <= 1:
        raise AerialSegError(f"opacity must be between 0 and 1, not {opacity}")
    with staged(paths) as tmp, ExitStack() as scratch:
        copy = scratch.enter_context(_scratch(tmp["labels"], "picture"))
        h, w = _copy_picture(path, copy, paths["labels"])  # errors name final files
        src = scratch.enter_context(_source(copy, path))
        labels = scratch.enter_context(_scratch(tmp["labels"], "labels"))
        sink = _Sink(seg, h, w, labels, paths["labels"])
        if "probs" in tmp:
            sink.probs_to(tmp["probs"])
        try:
            stream_raster(seg, src, [sink], tta, on_window, chunk or CHUNK)
        finally:
            sink.close()
        small, sample = _write_maps(seg.classes, copy, sink, tmp, paths, opacity)
        near = raster_familiarity(seg, src)  # the in-memory path's windows: same distance
        stats = class_counts_stats(sink.counts, h * w, seg.classes, gsd)
        info = {
            "image": str(path),
            "width": w,
            "height": h,
            **model_stats(seg, tta, sink.top / (h * w), near, sample),
            "gsd_m": gsd,
            "classes": stats,
        }
        side_by_side(small, sink.small, seg.classes, display_name(str(path)), stats, tmp["figure"])
        write_stats(tmp, info)
        return info


class _Sink:
    """What ``stream_raster`` hands out, kept small: labels to a scratch GeoTIFF, class counts,
    the summed top probability, every ``step``-th label for the figure."""

    def __init__(self, seg, h: int, w: int, labels_path: Path, name: Path):
        import rasterio

        self.h, self.w, self.n = h, w, seg.model.num_classes
        self.counts = np.zeros(self.n, np.int64)
        self.top = 0.0
        self.step = figure_step(h, w)
        self.small = np.zeros((-(-h // self.step), -(-w // self.step)), np.uint8)
        self.labels_path, self.name = labels_path, name
        # uncompressed: a piece rarely covers whole tiles, and a plain tile is rewritten in place
        self.dst = _gdal(name, rasterio.open, labels_path, "w", **_profile(h, w, 1))
        self.probs = None

    def probs_to(self, path: Path) -> None:
        """Also write the probabilities (float16) into ``path``'s .npy, row by row."""
        mm = np.lib.format.open_memmap(path, "w+", np.float16, (self.h, self.w, self.n))
        offset = mm.offset
        del mm  # written with pwrite: a memory map's pages would count in this process
        reserve_space(path)
        self.probs = (os.open(path, os.O_WRONLY), offset)

    def __call__(self, row, col, probs, valid):
        from rasterio.windows import Window

        from ..gis.areas import labels_of

        labels = labels_of(probs, valid)
        self.top += float(probs.max(-1).sum(dtype=np.float64))
        self.counts += np.bincount(labels.ravel(), minlength=256)[: self.n]
        rows, cols = labels.shape
        _gdal(self.name, self.dst.write, labels[None], window=Window(col, row, cols, rows))
        s = self.step
        r0, c0 = -(-row // s), -(-col // s)  # the first kept row and column at or after
        kept = labels[r0 * s - row :: s, c0 * s - col :: s]
        self.small[r0 : r0 + kept.shape[0], c0 : c0 + kept.shape[1]] = kept
        if self.probs is not None:
            fd, offset = self.probs
            data = probs.astype(np.float16)
            for i in range(rows):
                at = offset + ((row + i) * self.w + col) * self.n * 2
                os.pwrite(fd, data[i].tobytes(), at)

    def close(self) -> None:
        """Flush the labels (a full disk fails here too: one line) and close the files."""
        try:
            _gdal(self.name, self.dst.close)
        finally:
            if self.probs is not None:
                os.close(self.probs[0])
                self.probs = None


def _write_maps(classes, copy: Path, sink: _Sink, tmp, paths, opacity: float):
    """Labels PNG, colour PNG and overlay JPEG from the scratch files, strip by strip; the
    figure's decimated photo and the blank check's sample, as the in-memory path takes them."""
    from rasterio.windows import Window

    from ..io.jpegstream import JpegRows
    from ..io.pngstream import PngRows

    h, w = sink.h, sink.w
    step, blank = sink.step, max(1, int(math.sqrt(h * w / BLANK_SAMPLE)))
    band = max(1, OVERLAY_PIXELS // w)  # rows of the overlay painted at a time
    small = np.zeros((*sink.small.shape, 3), np.uint8)
    sample = np.zeros((-(-h // blank), -(-w // blank), 3), np.uint8)
    if max(h, w) > 65535:
        raise AerialSegError(f"{paths['overlay']}: a JPEG is at most 65 535 pixels a side")
    files = [PngRows(tmp["labels"], w, h, 1), PngRows(tmp["mask"], w, h, 3)]
    files.append(JpegRows(tmp["overlay"], w, h, quality=75))
    try:
        with ExitStack() as sources:
            rgb_src = sources.enter_context(_quiet_open(copy))
            lab_src = sources.enter_context(_quiet_open(sink.labels_path))
            for y in range(0, h, TILE):
                win = Window(0, y, w, min(TILE, h - y))
                rgb = np.moveaxis(_gdal(sink.name, rgb_src.read, window=win), 0, -1)
                labels = _gdal(sink.name, lab_src.read, 1, window=win)
                files[0].write(labels)
                files[1].write(classes.colorize(labels))
                shown = np.empty_like(rgb)
                for r in range(0, len(rgb), band):  # its float copies: ~50 B a pixel
                    shown[r : r + band] = paint_overlay(
                        rgb[r : r + band], labels[r : r + band], classes, opacity
                    )
                files[2].write(shown)
                for keep, s in ((small, step), (sample, blank)):
                    r0 = -(-y // s)
                    part = rgb[r0 * s - y :: s, ::s]
                    keep[r0 : r0 + len(part)] = part
        for f in files:
            f.close()
    except BaseException:
        for f in files:
            f.abort()
        raise
    return small, sample


def _copy_picture(path: Path, dest: Path, name: Path) -> tuple[int, int]:
    """Decode ``path`` once, top to bottom, into a tiled zstd GeoTIFF: (height, width).
    Measured on a 10 000² PNG: one GDAL decode is 1.2 CPU-s, the copy 2.1 (zstd with
    horizontal differencing: 1.24x smaller than raw, dearer codecs gain little on photos),
    a read of it 0.5; read straight, the picture would be decoded once per column chunk (5 at
    10 000², 20 at 40 000²)."""
    from rasterio.windows import Window

    with _quiet_open(path) as src:
        h, w = src.height, src.width
        profile = {**_profile(h, w, 3), "compress": "zstd", "zstd_level": 1, "predictor": 2}
        with _created(dest, name, profile) as dst:
            for y in range(0, h, TILE):
                win = Window(0, y, w, min(TILE, h - y))
                try:
                    data = src.read([1, 2, 3], window=win)
                except Exception as e:  # noqa: BLE001 - GDAL's reasons come as several types
                    raise AerialSegError(f"{path}: cannot read image ({gdal_reason(e)})") from None
                _gdal(name, dst.write, data, window=win)
    return h, w


def _profile(h: int, w: int, count: int) -> dict:
    return {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": "uint8",
            "tiled": True, "blockxsize": TILE, "blockysize": TILE,
            "BIGTIFF": "IF_SAFER"}  # fmt: skip


@contextmanager
def _created(path: Path, name: Path, profile: dict):
    """A GeoTIFF opened for writing, closed (its last blocks flushed) on leaving; a failure
    of either one line naming ``name``. Closed quietly when the block already failed."""
    import rasterio

    dst = _gdal(name, rasterio.open, path, "w", **profile)
    try:
        yield dst
    except BaseException:
        try:
            dst.close()
        except Exception:  # noqa: BLE001 - already failing; said why once
            pass
        raise
    _gdal(name, dst.close)


@contextmanager
def _source(copy: Path, path: Path):
    """The copy as a RasterSource (what stream_raster reads); errors name the picture."""
    from ..gis.rasters import RasterSource

    with warnings.catch_warnings():
        _no_georeference_warning()
        src = RasterSource(copy)
    src.path = path
    with src:
        yield src


@contextmanager
def _quiet_open(path: Path):
    """rasterio.open without its warning that a plain picture has no georeference."""
    import rasterio

    with warnings.catch_warnings():
        _no_georeference_warning()
        try:
            src = rasterio.open(path)
        except Exception as e:  # noqa: BLE001
            raise AerialSegError(f"{path}: cannot read image ({gdal_reason(e)})") from None
    with src:
        yield src


def _no_georeference_warning() -> None:
    from rasterio.errors import NotGeoreferencedWarning

    warnings.simplefilter("ignore", NotGeoreferencedWarning)


def _gdal(name: Path, work, *args, **kwargs):
    """``work(*args, **kwargs)``, a GDAL failure (a full disk, mostly) one line naming
    ``name``, with the disk's reason where libtiff printed it (its lines are caught, as
    :class:`~.geotiff.GeoTiffWriter` catches them)."""
    from ..gis.geotiff import _os_error, _reason, _stderr_caught

    said: list[str] = []
    try:
        with warnings.catch_warnings(), _stderr_caught(said):
            _no_georeference_warning()
            return work(*args, **kwargs)
    except AerialSegError:
        raise
    except Exception as e:  # noqa: BLE001 - GDAL's types vary
        raise AerialSegError(f"{name}: cannot write ({_reason(e, said)})") from None
    finally:
        if said and not _os_error(said):  # GDAL's warnings: not ours to hide
            os.write(2, "".join(said).encode())


@contextmanager
def _scratch(beside: Path, what: str):
    """A scratch file's path beside ``beside`` (a staged temporary), removed afterwards. Named
    as a temporary of that temporary, so a killed run's scratch files are cleared as its
    temporaries are (io.files.remove_stale_temps)."""
    path = beside.with_name(f".{beside.name}.{os.getpid()}-{secrets.token_hex(4)}.{what}")
    try:
        yield path
    finally:
        for p in (path, Path(f"{path}.aux.xml")):
            try:
                os.unlink(p)
            except OSError:
                pass
