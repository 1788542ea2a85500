"""A PNG written a band of rows at a time: an image too big for memory, saved without ever
holding it whole (Pillow's encoder takes only a whole image).

8-bit grey (H, W) or RGB (H, W, 3). Every row gets PNG's "Sub" filter (each byte minus the one
a pixel to its left): label and colour maps are long runs of one value, which it turns into
runs of zeros that deflate packs tightly, and it needs no row above, so bands are independent.
The bytes differ from Pillow's (it chooses a filter per row); the decoded pixels are the same.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEVEL = 6  # zlib's default, as Pillow's PNG writer uses
CHUNK = 1 << 20  # IDAT chunks of about this many compressed bytes


class PngRows:
    """``write(rows)`` bands top to bottom, then ``close()``; ``height`` rows in all."""

    def __init__(self, path: str | Path, width: int, height: int, channels: int):
        if channels not in (1, 3):
            raise ValueError(f"PNG rows: 1 or 3 channels, not {channels}")
        self.width, self.height, self.channels = width, height, channels
        self.done = 0
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.z = zlib.compressobj(LEVEL)
        self.pending: list[bytes] = []
        self.size = 0
        colour = 0 if channels == 1 else 2
        self.f.write(SIGNATURE)
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.uint8).reshape(len(rows), -1)
        if rows.shape[1] != self.width * self.channels:
            raise ValueError(
                f"PNG rows: {rows.shape[1]} bytes a row, not {self.width * self.channels}"
            )
        if self.done + len(rows) > self.height:
            raise ValueError("PNG rows: more rows than the image has")
        data = np.empty((len(rows), rows.shape[1] + 1), np.uint8)
        data[:, 0] = 1  # Sub
        data[:, 1 : 1 + self.channels] = rows[:, : self.channels]
        np.subtract(
            rows[:, self.channels :], rows[:, : -self.channels], out=data[:, 1 + self.channels :]
        )
        self._idat(self.z.compress(data))
        self.done += len(rows)

    def close(self) -> None:
        """Finish the file (all rows must have been written)."""
        if self.done != self.height:
            raise ValueError(f"PNG rows: {self.done} of {self.height} rows written")
        self._idat(self.z.flush(), final=True)
        self._chunk(b"IEND", b"")
        self.f.close()

    def abort(self) -> None:
        self.f.close()

    def _idat(self, data: bytes, final: bool = False) -> None:
        if data:
            self.pending.append(data)
            self.size += len(data)
        if self.size >= CHUNK or (final and self.size):
            self._chunk(b"IDAT", b"".join(self.pending))
            self.pending, self.size = [], 0

    def _chunk(self, kind: bytes, data: bytes) -> None:
        crc = zlib.crc32(data, zlib.crc32(kind))
        self.f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc))
