"""``segment`` for GIS rasters: the flags, and one georeferenced raster segmented to files.

A raster with a coordinate system or geotransform (GeoTIFF, COG, VRT, JPEG/PNG with a world
file) is streamed in bounded memory and its outputs keep its georeference; everything else
goes the in-memory way. rasterio & co. are imported only when such a raster is met.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AerialSegError


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
        "--scale",
        metavar="pLO,pHI|LO,HI|none",
        help="to 8 bits: per-band percentiles (default p2,p98 for 16-bit/float), fixed values, "
        "or none (the values as they are; the default for 8-bit)",
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


def options(args):
    """The GeoOptions of the command line (checked before anything slow starts)."""
    from ..inference.geofiles import GeoOptions, parse_mmu
    from ..io.rasters import Scale, parse_bands

    if args.simplify < 0:
        raise AerialSegError(f"--simplify must be >= 0, not {args.simplify}")
    if args.zones and not Path(args.zones).is_file():
        raise AerialSegError(f"--zones {args.zones}: no such file")
    return GeoOptions(
        bands=parse_bands(args.bands),
        scale=Scale.parse(args.scale),
        cog=args.cog,
        confidence=args.confidence,
        probabilities=args.save_probabilities,
        vector=args.vector_format if args.vector else None,
        mmu=parse_mmu(args.mmu),
        simplify=args.simplify,
        gsd=args.gsd,
        zones=Path(args.zones) if args.zones else None,
    )


def wants_raster_path(path: Path, args) -> bool:
    """Whether ``path`` goes the GIS way: georeferenced, or --bands/--scale asked for a
    raster read. A GeoTIFF met without the geo extra is done the in-memory way, with a note."""
    from ..io import rasters

    if rasters.rasterio_or_none() is None:
        if args.bands or args.scale or _has_geotiff_keys(path):
            print(
                f"aerialseg: note: {path}: GIS raster read as a plain picture (no CRS, --bands "
                "or --scale); for that install the geo extra: pip install 'aerialseg[geo]'",
                file=sys.stderr,
            )
        return False
    if rasters.is_georeferenced(path):
        return True
    return bool(args.bands or args.scale) and path.suffix.lower() in rasters.GEO_SUFFIXES


def _has_geotiff_keys(path: Path) -> bool:
    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        from PIL import Image

        with Image.open(path) as im:
            return 34735 in getattr(im, "tag_v2", {})  # GeoKeyDirectoryTag
    except Exception:  # noqa: BLE001 - unreadable: the in-memory reader says why
        return False


def segment_file(seg, path: Path, name: str, out: Path, args, opts, quiet) -> dict | None:
    """Segment one GIS raster into ``out``: its statistics, or None when an earlier run
    already did."""
    from tqdm import tqdm

    from ..inference.geofiles import geo_output_paths, segment_raster_to_files
    from ..inference.outputs import check_free, display_name
    from ..inference.tiling import count_windows
    from ..io.rasters import RasterSource

    paths = geo_output_paths(out, name, opts)
    if not check_free(paths, args.overwrite, source=str(path)):
        return None
    with RasterSource(path, opts.bands, opts.scale) as src:  # a bad raster: before the bar
        total = count_windows(src.height, src.width, seg.tiling)
    desc = display_name(path.name)
    with tqdm(total=total, unit="win", leave=False, desc=desc, disable=quiet) as bar:
        return segment_raster_to_files(seg, path, paths, opts, args.tta, bar.update)
