"""An RGB JPEG written a band of rows at a time, in memory that does not grow with the picture.

Why not GDAL's JPEG writer: it always asks libjpeg for optimised Huffman tables, for which
libjpeg keeps the coefficients of the whole picture (3 bytes a pixel: 1.2 GB for a 20 000²
overlay, 4.8 GB for a 40 000² one) before writing a byte. Pillow's encoder takes only a whole
image. So each band (a multiple of 16 rows: whole 4:2:0 MCU rows) is encoded by Pillow as a
JPEG of its own, with libjpeg's standard Huffman tables and a restart marker after every MCU
row, and the bands' entropy-coded data are joined into one baseline JPEG: the first band's
header (its height set to the picture's), every band's scan with its restart markers numbered
on, a restart marker between bands, one end marker. A restart resets the decoder's state, so
the joined file decodes as if encoded in one go with a restart every MCU row.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

ROWS = 256  # rows encoded at a time (a multiple of 16)
SOF0, SOS, DRI, EOI = b"\xff\xc0", b"\xff\xda", b"\xff\xdd", b"\xff\xd9"


class JpegRows:
    """``write(rows)`` (rows, width, 3) uint8 bands top to bottom, then ``close()``."""

    def __init__(self, path: str | Path, width: int, height: int, quality: int = 75):
        if not 0 < height < 65536 or not 0 < width < 65536:
            raise ValueError(
                f"JPEG rows: a JPEG is at most 65535 pixels a side, not {width}x{height}"
            )
        self.width, self.height, self.quality = width, height, quality
        self.done = 0  # rows encoded
        self.pending: list[np.ndarray] = []
        self.header: bytes | None = None
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close() or abort()

    def write(self, rows: np.ndarray) -> None:
        if rows.ndim != 3 or rows.shape[1:] != (self.width, 3):
            raise ValueError(f"JPEG rows: ({self.width}, 3) a row, not {rows.shape[1:]}")
        self.pending.append(np.ascontiguousarray(rows, np.uint8))
        have = sum(len(p) for p in self.pending)
        if self.done + have > self.height:
            raise ValueError("JPEG rows: more rows than the picture has")
        if have >= ROWS:
            band = np.concatenate(self.pending)
            cut = len(band) // 16 * 16
            self._encode(band[:cut])
            self.pending = [band[cut:]] if cut < len(band) else []

    def close(self) -> None:
        """Encode the last rows and finish the file (all rows must have been written)."""
        if self.pending:
            self._encode(np.concatenate(self.pending))
            self.pending = []
        if self.done != self.height:
            raise ValueError(f"JPEG rows: {self.done} of {self.height} rows written")
        self.f.write(EOI)
        self.f.close()

    def abort(self) -> None:
        self.f.close()

    def _encode(self, band: np.ndarray) -> None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(band).save(buf, "JPEG", quality=self.quality, subsampling=2,
                                   optimize=False, restart_marker_rows=1)  # fmt: skip
        data = buf.getvalue()
        segments = _segments(data)  # marker -> offset of its length
        start = segments[SOS] + int.from_bytes(data[segments[SOS] : segments[SOS] + 2], "big")
        if not data.endswith(EOI) or DRI not in segments or SOF0 not in segments:
            raise RuntimeError("JPEG rows: Pillow's JPEG is not the baseline JPEG expected")
        sof = segments[SOF0] + 3  # its height: after the length and the precision
        header = data[:sof] + self.height.to_bytes(2, "big") + data[sof + 2 : start]
        mcu_row = self.done // 16  # global index of this band's first MCU row
        if self.header is None:
            self.header = header
            self.f.write(header)
        else:
            if header != self.header:  # tables differ: the scans could not share one header
                raise RuntimeError("JPEG rows: the bands' JPEG headers differ")
            self.f.write(bytes([0xFF, 0xD0 + (mcu_row - 1) % 8]))  # restart between bands
        self.f.write(_renumbered(data[start:-2], mcu_row % 8))
        self.done += len(band)


def _segments(data: bytes) -> dict[bytes, int]:
    """The header's markers, up to the scan's (SOS), and where each one's length is."""
    at, found = 2, {}  # after SOI
    while data[at : at + 2] != SOS:
        found[data[at : at + 2]] = at + 2
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    found[SOS] = at + 2
    return found


def _renumbered(scan: bytes, shift: int) -> bytes:
    """The scan with its restart markers (0xFF 0xD0-0xD7; stuffed data bytes are 0xFF 0x00)
    numbered on by ``shift``."""
    if shift == 0:
        return scan
    a = np.frombuffer(scan, np.uint8).copy()
    at = np.flatnonzero((a[:-1] == 0xFF) & (a[1:] >= 0xD0) & (a[1:] <= 0xD7)) + 1
    a[at] = 0xD0 + (a[at] - 0xD0 + shift) % 8
    return a.tobytes()
