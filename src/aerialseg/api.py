"""One call from a notebook: :func:`segment` takes a path, a PIL image or an array.

>>> labels = aerialseg.segment("ortho.tif")              # (H, W) uint8 class indices
>>> labels, probs = aerialseg.segment(im, probabilities=True)

Files are read as the desktop app reads them: a GeoTIFF, VRT, JPEG 2000 or ERDAS file, or a
picture with a world file, through the GIS raster reader (bands and 8-bit scaling included;
a TIFF without a georeference too, where ``aerialseg segment`` reads it with Pillow: the same
pixels for 8-bit RGB, percentiles instead of min/max for 16-bit); any other picture through
Pillow. Pictures in memory go through :func:`~.io.images.to_rgb`. To write the command's
files from Python, use :func:`~aerialseg.jobs.segment.segment_file`.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from .classes import IGNORE_INDEX
from .errors import AerialSegError
from .io.images import MAX_PIXELS, open_image, to_rgb

# what GDAL reads better than Pillow even without a georeference (16-bit and multi-band TIFFs)
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


def segment(
    image,
    model=None,
    *,
    tta: bool = False,
    probabilities: bool = False,
    stretch=None,
    bands=None,
):
    """Segment one picture: (H, W) uint8 class indices, or (labels, probabilities (H, W, C)
    float32) with ``probabilities``.

    ``image``: a path (a GeoTIFF or any raster GDAL reads, or a plain picture), a PIL image of
    any mode, or a numpy array (H, W), (H, W, bands) or (bands, H, W) as rasterio reads it, of
    uint8, uint16 or float values. Values that are not 8-bit are scaled per band from their
    percentiles 2 and 98, as the CLI scales a raster; ``stretch`` ("p2,p98", "LOW,HIGH" or
    "none") and ``bands`` (three 1-based band numbers for red, green, blue) are the CLI's
    ``--stretch`` and ``--bands``. Where a raster holds no data, labels are 255 and
    probabilities 0.

    ``model``: None for the bundled model, a checkpoint or ``.onnx`` path, or a loaded
    :class:`~.inference.segmenter.Segmenter`. Models loaded from a path are kept for the
    next call, so calling this in a loop loads each once. ``tta`` averages the 8
    flips/rotations (8 times slower).
    """
    seg = _segmenter(model)
    rgb, valid = _read(image, bands, stretch)
    if probabilities:
        probs = seg.predict_proba(rgb, tta)
        labels = probs.argmax(-1).astype(np.uint8)
    else:
        probs, labels = None, seg.segment(rgb, tta)
    if valid is not None and not valid.all():
        labels[~valid] = IGNORE_INDEX
        if probs is not None:
            probs[~valid] = 0
    return (labels, probs) if probabilities else labels


def _segmenter(model):
    from .inference.segmenter import Segmenter

    if isinstance(model, Segmenter):
        return model
    if model is None:
        return _load(None, None)
    if not isinstance(model, (str, Path)):
        raise AerialSegError(
            f"model: expected None, a checkpoint path or a Segmenter, got {type(model).__name__}"
        )
    path = Path(model)
    if not path.is_file():
        raise AerialSegError(f"{path}: no such model file")
    stat = path.stat()  # a checkpoint rewritten since (training again) is loaded again
    return _load(str(path.resolve()), (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=4)
def _load(path: str | None, version):
    from .inference.segmenter import load_segmenter

    return load_segmenter(path)


def _read(image, bands, stretch) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB uint8, where it holds data or None)."""
    if not isinstance(image, (str, Path)):
        return to_rgb(image, bands, stretch), None
    path = Path(image)
    if not path.is_file():
        raise AerialSegError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    if not _is_raster(path):
        return to_rgb(open_image(path), bands, stretch), None
    from rasterio.errors import NotGeoreferencedWarning

    from .gis.rasters import RasterSource
    from .gis.stretch import Scale

    if bands is not None:
        bands = tuple(bands) * 3 if len(tuple(bands)) == 1 else tuple(bands)
    if stretch is not None and not isinstance(stretch, Scale):
        stretch = Scale.parse(stretch)
    with warnings.catch_warnings():  # a TIFF without georeference is a picture here
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with RasterSource(path, bands, stretch) as src:
            if src.height * src.width > MAX_PIXELS:  # read whole here: bounded in segment_file
                raise AerialSegError(
                    f"{path}: {src.width} x {src.height} pixels is more than segment() reads "
                    f"at once ({MAX_PIXELS:,}); aerialseg.segment_file streams it in bounded "
                    "memory"
                )
            return src.read_all()


def _is_raster(path: Path) -> bool:
    from .gis.rasters import is_georeferenced, rasterio_or_none

    if path.suffix.lower() in RASTER_SUFFIXES:
        return rasterio_or_none() is not None
    return is_georeferenced(path)
