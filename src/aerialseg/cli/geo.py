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
        nodata=args.nodata,
    )


def wants_raster_path(path: Path, args) -> bool:
    """Whether ``path`` goes the GIS way: georeferenced, or --bands/--scale asked for a
    raster read. A GeoTIFF met without the geo extra is done the in-memory way, with a note."""
    from ..io import rasters

    if rasters.rasterio_or_none() is None:
        if args.bands or args.scale or args.nodata is not None or _has_geotiff_keys(path):
            print(
                f"aerialseg: note: {path}: GIS raster read as a plain picture (no CRS, --bands "
                "or --scale); for that install the geo extra: pip install 'aerialseg[geo]'",
                file=sys.stderr,
            )
        return False
    if rasters.is_georeferenced(path):
        return True
    asked = args.bands or args.scale or args.nodata is not None
    return bool(asked) and path.suffix.lower() in rasters.GEO_SUFFIXES


def _has_geotiff_keys(path: Path) -> bool:
    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        from PIL import Image

        with Image.open(path) as im:
            return 34735 in getattr(im, "tag_v2", {})  # GeoKeyDirectoryTag
    except Exception:  # noqa: BLE001 - unreadable: the in-memory reader says why
        return False


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


def resampling(seg, path: Path, args, raster: bool) -> tuple[float, float | None]:
    """How much to resample the input so that the model sees it at the resolution it was
    trained at (``--input-gsd``), and the input's metres per pixel: (1, None) without the
    flag. Without it, a georeferenced raster far from the model's resolution gets a note."""
    wanted = args.input_gsd  # None, metres per pixel, or "auto": from the raster's CRS
    if wanted is None and not (raster and seg.gsd):
        return 1.0, None
    if wanted is not None:
        check_model_gsd(seg)
    gsd = wanted if wanted not in (None, "auto") else (_raster_gsd(path, args) if raster else None)
    if gsd is None:
        if wanted == "auto":
            raise AerialSegError(
                f"{path}: --input-gsd auto reads the resolution of a georeferenced raster with "
                "a CRS; give it in metres per pixel instead (e.g. --input-gsd 0.5)"
            )
        return 1.0, None
    factor = gsd / seg.gsd
    if wanted is None:  # a hint only: resampling is asked for, never done behind one's back
        if not 1 / 1.5 <= factor <= 1.5:
            print(
                f"aerialseg: note: {path}: {gsd:.3g} m per pixel, the model was trained at "
                f"{seg.gsd:g}; --input-gsd auto resamples it to the model's resolution",
                file=sys.stderr,
            )
        return 1.0, None
    return factor, gsd


def check_resampled_size(path: Path, h: int, w: int, factor: float, max_pixels=None) -> None:
    """One line when ``--input-gsd`` resamples the input (by ``factor``, to ``h`` x ``w``)
    too large for ``--max-pixels`` or too small to map: under 32 pixels a side is a
    resolution typed wrong (e.g. centimetres), not a map anyone wants."""
    where = f"{path}: resampled to the model's resolution (x{factor:.3g}) it would"
    if max_pixels is not None and h * w > max_pixels:
        raise AerialSegError(
            f"{where} have {h * w:,} pixels, more than --max-pixels {max_pixels:,}"
        )
    if min(h, w) < 32:
        raise AerialSegError(
            f"{where} be {w} x {h} pixels, too small to map: is --input-gsd in metres per pixel?"
        )


def check_model_gsd(seg) -> None:
    """``--input-gsd`` needs the model's own resolution."""
    if not seg.gsd:
        raise AerialSegError(
            f"the model {seg.name} does not record the resolution it was trained at (train "
            "--gsd records it), so --input-gsd cannot resample to it; --scales F resamples by F"
        )


def _raster_gsd(path: Path, args) -> float | None:
    """A raster's metres per pixel (the root of a pixel's mean ground area), None without
    a CRS."""
    import numpy as np

    from ..inference.georaster import pixel_areas
    from ..io.rasters import RasterSource, Scale, parse_bands

    with RasterSource(path, parse_bands(args.bands), Scale()) as src:  # Scale(): no sampling
        if src.crs is None:
            return None
        areas, _ = pixel_areas(src)
    return float(np.sqrt(areas.mean()))


def segment_file(
    seg, path: Path, name: str, out: Path, args, opts, quiet, resample: float = 1.0
) -> dict | None:
    """Segment one GIS raster into ``out``, seen ``resample`` times as many pixels per side:
    its statistics, or None when an earlier run already did."""
    from tqdm import tqdm

    from ..inference.geofiles import geo_output_paths, segment_raster_to_files
    from ..inference.outputs import check_free, display_name
    from ..inference.tiling import count_windows
    from ..io.rasters import RasterSource

    paths = geo_output_paths(out, name, opts)
    if not check_free(paths, args.overwrite, source=str(path)):
        return None
    with RasterSource(path, opts.bands, opts.scale, resample, opts.nodata) as src:  # bad: first
        if resample != 1:
            check_resampled_size(path, src.height, src.width, resample)
        total = count_windows(src.height, src.width, seg.tiling)
    desc = display_name(path.name)
    with tqdm(total=total, unit="win", leave=False, desc=desc, disable=quiet) as bar:
        return segment_raster_to_files(seg, path, paths, opts, args.tta, bar.update, resample)
