"""Training data read from disk as it is needed (``train --stream``), for datasets larger than
memory.

A :class:`DiskSample` stands for one image/mask pair and is used where an in-memory
:class:`~.segmentation.Sample` is: the sampler (:class:`~.segmentation.Batches`) draws its
crops from the sizes alone and asks each sample for the crop's pixels. A GeoTIFF image with a
one-band GeoTIFF mask is read window by window through rasterio (never whole); a JPEG/PNG
pair is decoded once per process and kept in a bounded cache (what the in-memory path does,
without holding every image at once). The pixel statistics the training set-up needs (mean
and std, class counts, unlabelled images, unknown colours) come from one pass over each file,
in row blocks.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..classes import ClassTable
from ..errors import AerialSegError
from ..gis import raster_masks, rasters
from .segmentation import Pair, PixelStats, Sample, find_pairs, load_sample

BLOCK_ROWS = 512  # rows per read when a raster is scanned for its statistics
CACHE_BYTES = 512 * 2**20  # decoded JPEG/PNG pairs kept per process

_sources: dict[tuple[int, str], rasters.RasterSource] = {}  # per process: GDAL handles
_decoded: OrderedDict[str, Sample] = OrderedDict()  # per process, least recently used first


class DiskSample:
    """One image/mask pair on disk: ``shape``, ``area``, ``window()``, ``stats()`` like a
    :class:`~.segmentation.Sample`; ``loaded()`` decodes it whole (validation)."""

    def __init__(self, pair: Pair, classes: ClassTable, min_size: int = 0):
        self.id, self.group, self.pair, self.classes = pair.id, pair.group, pair, classes
        self.windowed = _windowed(pair)
        self.shape = _size(pair, self.windowed)
        h, w = self.shape
        if min(h, w) < min_size:
            raise AerialSegError(
                f"{pair.image}: {w}x{h} is smaller than the {min_size}x{min_size} patch size"
            )
        self._stats: PixelStats | None = None
        self._unknown = 0

    @property
    def area(self) -> int:
        return self.shape[0] * self.shape[1]

    def window(self, y: int, x: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.windowed:
            return self.loaded().window(y, x, side)
        return self._read(y, x, side, side)[:2]

    def _read(self, y: int, x: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, int]:
        rgb, _ = _source(self.pair.image).read(y, x, rows, cols)
        labels, unknown = raster_masks.read_mask_raster(
            self.pair.mask, self.classes, (y, x, rows, cols)
        )
        return rgb, labels, unknown

    def stats(self) -> PixelStats:
        if self._stats is None:
            if not self.windowed:
                s = self.loaded()
                self._stats, self._unknown = s.stats(), s.unknown_pixels
            else:
                h, w = self.shape
                total, self._unknown = None, 0
                for y in range(0, h, BLOCK_ROWS):
                    rgb, labels, unknown = self._read(y, 0, min(BLOCK_ROWS, h - y), w)
                    block = PixelStats.of(rgb, labels)
                    total = block if total is None else total + block
                    self._unknown += unknown
                self._stats = total
        return self._stats

    @property
    def unknown_pixels(self) -> int:
        self.stats()
        return self._unknown

    def loaded(self) -> Sample:
        """The pair decoded whole (kept in this process's cache while there is room)."""
        s = _decoded.get(self.id)
        if s is not None:
            _decoded.move_to_end(self.id)
            return s
        s = load_sample(self.pair, self.classes)
        if self.windowed:  # a big raster, loaded for validation: not cached
            return s
        _decoded[self.id] = s
        size = sum(v.image.nbytes + v.labels.nbytes for v in _decoded.values())
        while size > CACHE_BYTES and len(_decoded) > 1:
            _, old = _decoded.popitem(last=False)
            size -= old.image.nbytes + old.labels.nbytes
        return s


def stream_dataset(root: str | Path, classes: ClassTable, min_size: int = 0) -> list[DiskSample]:
    """Every pair under ``root`` (see :func:`~.segmentation.find_pairs`), not decoded."""
    return [DiskSample(p, classes, min_size) for p in find_pairs(root)]


def _windowed(pair: Pair) -> bool:
    """GeoTIFF image and one-band GeoTIFF mask: read in windows (else decoded once)."""
    tif = (".tif", ".tiff")
    if pair.image.suffix.lower() not in tif or pair.mask.suffix.lower() not in tif:
        return False
    rio = rasters.rasterio_or_none()
    if rio is None:
        return False
    try:
        with rio.open(pair.mask) as m:
            return m.count == 1
    except Exception as e:  # noqa: BLE001 - GDAL's reasons come as several types
        raise AerialSegError(f"{pair.mask}: cannot read mask ({rasters.gdal_reason(e)})") from None


def _size(pair: Pair, windowed: bool) -> tuple[int, int]:
    """(height, width) from the image's header, without decoding it."""
    if windowed:
        src = _source(pair.image)
        with rasters.need_rasterio().open(pair.mask) as m:
            if (m.height, m.width) != (src.height, src.width):
                raise AerialSegError(
                    f"{pair.mask}: mask is {m.width}x{m.height} but its image is "
                    f"{src.width}x{src.height}"
                )
        return src.height, src.width
    from PIL import Image

    try:
        with Image.open(pair.image) as im:
            return im.height, im.width
    except Exception:  # noqa: BLE001 - the reader of the in-memory path says why, in one line
        from ..io.images import read_image

        read_image(pair.image, strict=True)
        raise


def _source(path: Path) -> rasters.RasterSource:
    """This process's open handle of ``path`` (a handle opened before a fork is not used in
    the child: GDAL handles are not shared between processes)."""
    key = (os.getpid(), str(path))
    if key not in _sources:
        _sources[key] = rasters.RasterSource(path)
    return _sources[key]
