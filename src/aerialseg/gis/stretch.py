"""How a raster's values become the 8-bit RGB the model sees: which bands (``--bands``) and
how their values are stretched to 0-255 (``--stretch``). Plain parsing: no GDAL needed."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AerialSegError


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``--bands 3,2,1`` -> (3, 2, 1): 1-based band numbers for red, green and blue."""
    if text is None:
        return None
    try:
        bands = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise AerialSegError(f"--bands {text}: expected three band numbers, e.g. 3,2,1") from None
    if len(bands) == 1:
        bands *= 3  # one grey band, shown as grey
    if len(bands) != 3 or min(bands) < 1:
        raise AerialSegError(f"--bands {text}: expected three band numbers >= 1, e.g. 3,2,1")
    return bands


@dataclass(frozen=True)
class Scale:
    """How values become 0-255: ``percentiles`` (low, high) computed per band, ``values``
    (low, high) given, or neither: values taken as they are (clipped to 0-255)."""

    percentiles: tuple[float, float] | None = None
    values: tuple[float, float] | None = None

    @classmethod
    def parse(cls, text: str | None) -> Scale | None:
        """``p2,p98`` | ``LOW,HIGH`` | ``none``; None (not given): percentiles 2/98 for data
        that is not 8-bit, as it is for 8-bit data."""
        if text is None:
            return None
        t = text.strip().lower()
        if t == "none":
            return cls()
        parts = t.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            if all(p.startswith("p") for p in parts):
                lo, hi = (float(p[1:]) for p in parts)
                if not 0 <= lo < hi <= 100:
                    raise ValueError
                return cls(percentiles=(lo, hi))
            lo, hi = (float(p) for p in parts)
            if not hi > lo:
                raise ValueError
            return cls(values=(lo, hi))
        except ValueError:
            raise AerialSegError(
                f"--stretch {text}: expected pLOW,pHIGH percentiles (e.g. p2,p98), LOW,HIGH "
                "values or none"
            ) from None
