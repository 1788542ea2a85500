"""GeoTIFFs written band by band in bounded memory, with the input's CRS and transform.

:class:`GeoTiffWriter` takes windows as they are finished, in any order, into a plain tiled
file beside the output (rewriting an uncompressed tile in place costs nothing, and nothing
of the map is ever held in memory), then GDAL copies that into the final, deflate-compressed
tiled GeoTIFF (BigTIFF when it needs it) with overviews, or a Cloud-Optimised GeoTIFF. A label
map gets the display colours as its colour table, nodata 255, the class names as band metadata
and, beside it, ``.aux.xml`` category names (GDAL, ArcGIS) and a ``.qml`` style (QGIS loads
it with the layer, so the legend shows the class names).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ..classes import IGNORE_INDEX, ClassTable, to_hex
from ..errors import AerialSegError
from .rasters import need_rasterio

TILE = 512
NODATA_LABEL = IGNORE_INDEX  # 255: no data in the input, no class in the map


class GeoTiffWriter:
    """One output raster: ``write`` windows, then ``finish`` into the final file."""

    def __init__(
        self,
        dest: Path,
        like,
        count: int,
        nodata: int | None = None,
        classes: ClassTable | None = None,
        descriptions: list[str] | None = None,
        mask: bool = False,
        name: Path | None = None,
    ):
        """``dest``: where the final file goes (a temporary name; the caller renames it);
        ``like``: the input dataset, for size, CRS and transform; ``mask``: give the output
        GDAL's internal mask of valid pixels (for data where no value is free for nodata);
        ``name``: what errors call the file (its final name; default ``dest``)."""
        rio = need_rasterio()
        self.dest, self.classes, self.mask = Path(dest), classes, mask
        self.name = name or self.dest
        self.raw = self.dest.with_name(self.dest.name + ".raw.tif")
        profile = {
            "driver": "GTiff",
            "width": like.width,
            "height": like.height,
            "count": count,
            "dtype": "uint8",
            "crs": like.crs,
            "transform": like.transform,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": TILE,
            "blockysize": TILE,
            "BIGTIFF": "IF_SAFER",
        }

        def start():
            self.dst = rio.open(self.raw, "w", **profile)
            if classes is not None:
                self.dst.write_colormap(1, colour_table(classes))
                self.dst.update_tags(1, **class_tags(classes))
            for i, text in enumerate(descriptions or [], start=1):
                self.dst.set_band_description(i, text)

        try:
            self._io(start)
        except AerialSegError:
            self._remove_raw()
            raise

    def _io(self, work):
        """``work()`` (GDAL writing), any failure one line naming the file and why. libtiff
        prints some I/O errors (a full disk's) straight to the process's stderr besides
        raising: those lines are caught, and give the reason."""
        said: list[str] = []
        try:
            with _stderr_caught(said):
                return work()
        except Exception as e:  # noqa: BLE001 - a full disk, mostly; GDAL's types vary
            raise AerialSegError(f"{self.name}: cannot write ({_reason(e, said)})") from None
        finally:
            if said and not _os_error(said):  # e.g. GDAL's warnings: not ours to hide
                os.write(2, "".join(said).encode())

    def write(self, row: int, col: int, data: np.ndarray, valid: np.ndarray | None = None):
        """``data`` (rows, cols) or (rows, cols, bands) at (row, col); ``valid`` (rows, cols)
        for the internal mask."""
        from rasterio.windows import Window

        arr = data[None] if data.ndim == 2 else np.moveaxis(data, -1, 0)
        win = Window(col, row, arr.shape[2], arr.shape[1])

        def work():
            self.dst.write(arr, window=win)
            if self.mask and valid is not None:
                self.dst.write_mask(valid.astype(np.uint8) * 255, window=win)

        self._io(work)

    def finish(self, cog: bool = False, resampling: str = "nearest") -> Path:
        """Compress into ``dest`` with overviews (or as a COG); the plain file is removed."""
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.shutil import copy

        def work():
            self.dst.close()
            opts = {"COMPRESS": "DEFLATE", "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS"}
            if cog:
                opts.update(RESAMPLING=resampling.upper(), BLOCKSIZE=TILE)
                copy(self.raw, self.dest, driver="COG", **opts)
            else:
                with rasterio.open(self.raw, "r+") as ds:
                    factors = overview_factors(ds.width, ds.height)
                    if factors:
                        ds.build_overviews(factors, Resampling[resampling])
                opts.update(TILED="YES", BLOCKXSIZE=TILE, BLOCKYSIZE=TILE)
                copy(self.raw, self.dest, driver="GTiff", COPY_SRC_OVERVIEWS="YES", **opts)

        try:
            self._io(work)
        finally:
            self._remove_raw()
        return self.dest

    def abort(self) -> None:
        try:
            if not self.dst.closed:
                with _stderr_caught([]):  # already failing, and said why once
                    self.dst.close()
        except Exception:  # noqa: BLE001 - already failing; the file goes anyway
            pass
        self._remove_raw()

    def _remove_raw(self) -> None:
        for p in (self.raw, Path(str(self.raw) + ".ovr"), Path(str(self.raw) + ".aux.xml")):
            try:
                os.unlink(p)
            except OSError:
                pass


def overview_factors(width: int, height: int, smallest: int = 256) -> list[int]:
    """2, 4, 8 ... until the overview's longer side is at most ``smallest`` pixels."""
    factors, f = [], 2
    while max(width, height) / (f // 2) > smallest:
        factors.append(f)
        f *= 2
    return factors


def colour_table(classes: ClassTable) -> dict[int, tuple[int, int, int, int]]:
    """The GeoTIFF's colour table: the display colours, as maps show them (not the mask
    colours). A TIFF palette keeps no alpha, so a transparent class is stored over white (a
    neutral colour in any viewer); QGIS draws it transparent from the .qml beside it."""
    flat = classes.paint(np.arange(len(classes), dtype=np.uint8))
    lut = {i: (*map(int, rgb), a[3]) for i, (rgb, a) in enumerate(zip(flat, classes.display))}
    lut[NODATA_LABEL] = (0, 0, 0, 0)
    return lut


def class_tags(classes: ClassTable) -> dict[str, str]:
    """Band metadata naming each class value (what GDAL-based tools show as metadata)."""
    tags = {f"CLASS_{i}": name for i, name in enumerate(classes.names)}
    tags["CLASS_255"] = "nodata"
    tags["CLASSES"] = ",".join(classes.names)
    return tags


def aux_xml(classes: ClassTable) -> str:
    """GDAL's sidecar (PAM) with the category names: value i is the class named i-th."""
    cats = "".join(f"      <Category>{_xml(n)}</Category>\n" for n in classes.names)
    return (
        "<PAMDataset>\n"
        '  <PAMRasterBand band="1">\n'
        "    <CategoryNames>\n"
        f"{cats}"
        "    </CategoryNames>\n"
        "  </PAMRasterBand>\n"
        "</PAMDataset>\n"
    )


def qgis_style(classes: ClassTable) -> str:
    """A QGIS layer style (.qml): the label map drawn in the display colours (a transparent
    class with alpha 0), with the class names in the legend; QGIS applies ``NAME.qml`` to
    ``NAME.tif`` when it opens it."""
    entries = "".join(
        f'        <paletteEntry value="{i}" color="{to_hex(c[:3]).lower()}" alpha="{c[3]}" '
        f"label={quoteattr(n)}/>\n"
        for i, (n, c) in enumerate(zip(classes.names, classes.display))
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22" styleCategories="Symbology">\n'
        "  <pipe>\n"
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" '
        'nodataColor="">\n'
        "      <rasterTransparency/>\n"
        "      <colorPalette>\n"
        f"{entries}"
        "      </colorPalette>\n"
        "    </rasterrenderer>\n"
        "  </pipe>\n"
        "</qgis>\n"
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@contextlib.contextmanager
def _stderr_caught(said: list[str]):
    """What C code prints on file descriptor 2 meanwhile, appended to ``said``."""
    sys.stderr.flush()
    try:
        keep = tempfile.TemporaryFile()  # in the temp folder: the output's disk may be full
    except OSError:
        yield
        return
    saved = os.dup(2)
    try:
        os.dup2(keep.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        keep.seek(0)
        text = keep.read().decode(errors="replace")
        keep.close()
        if text:
            said.append(text)


# what libtiff's messages say when the disk (not the data) is the problem
OS_ERRORS = [os.strerror(n) for n in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)]


def _os_error(said: list[str]) -> str | None:
    text = "".join(said)
    return next((m for m in OS_ERRORS if m in text), None)


def _reason(e: Exception, said: list[str] = ()) -> str:
    """Why writing failed: the disk's error where libtiff printed one, else the first
    message of the exception chain that says more than "see previous exception"."""
    found = _os_error(list(said))
    if found:
        return found
    first = None
    while e is not None:
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        text = str(e).strip()
        first = first or (text.splitlines()[0] if text else type(e).__name__)
        if text and "previous exception" not in text:
            return text.splitlines()[0]
        e = e.__cause__ or e.__context__
    return first or "unknown error"
