"""``segment``'s flags for GIS rasters (what they do: :mod:`aerialseg.jobs.segment`)."""

from __future__ import annotations

import argparse

from .common import Deprecated


def add_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "GIS rasters (GeoTIFF, COG, VRT...: needs the geo extra; outputs keep the CRS)"
    )
    g.add_argument(
        "--bands",
        metavar="R,G,B",
        help="band numbers of red, green, blue (default: by colour interpretation, else 1,2,3)",
    )
    g.add_argument(
        "--stretch",
        metavar="pLO,pHI|LO,HI|none",
        help="to 8 bits: per-band percentiles (default p2,p98 for 16-bit/float), fixed values, "
        "or none (the values as they are; the default for 8-bit)",
    )
    # --scale was this flag's name, beside --scales (multi-scale): kept, with a note
    g.add_argument("--scale", dest="stretch", action=Deprecated, instead="--stretch")
    g.add_argument(
        "--nodata",
        type=float,
        metavar="VALUE",
        help="pixels whose bands all equal VALUE hold no data (black or white borders without "
        "a nodata flag; like GDAL's -srcnodata): left out of every output",
    )
    g.add_argument("--cog", action="store_true", help="write Cloud-Optimised GeoTIFFs")
    g.add_argument(
        "--confidence",
        action="store_true",
        help="also write NAME_confidence.tif (highest class probability x 255)",
    )
    g.add_argument(
        "--vector", action="store_true", help="also write the map as polygons (NAME_polygons)"
    )
    g.add_argument(
        "--vector-format",
        choices=("gpkg", "geojson"),
        default="gpkg",
        help="GeoPackage in the raster's CRS, or GeoJSON in EPSG:4326 (default: gpkg)",
    )
    g.add_argument(
        "--mmu",
        default="16px",
        metavar="AREA",
        help="minimum mapping unit of the polygons: m^2 (25) or pixels (16px); smaller "
        "patches join their neighbour; 0: none (default: 16px)",
    )
    g.add_argument(
        "--zones",
        metavar="FILE",
        help="vector file of zones (parcels, districts...; any CRS): class areas and shares "
        "per zone, as NAME_zones.csv and NAME_zones.gpkg",
    )
    g.add_argument(
        "--simplify",
        type=float,
        default=1.0,
        metavar="PIXELS",
        help="polygon simplification tolerance, neighbours kept edge to edge; 0: none (default: 1)",
    )


def input_gsd(text: str) -> float | str:
    """``--input-gsd``: metres per pixel, or ``auto``."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"metres per pixel (> 0) or auto, not {text!r}")
    return value
