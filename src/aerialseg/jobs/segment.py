"""Segmenting one file into its outputs: the one function ``segment``, ``segment-batch``
and a notebook call.

A raster with a coordinate system or geotransform (GeoTIFF, COG, VRT, JPEG/PNG with a world
file), or any raster when --bands, --stretch or --nodata ask for GDAL's reading, is opened
once and streamed in bounded memory, and its outputs keep its georeference; everything else
goes the in-memory way. rasterio & co. are imported only when such a raster is met.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AerialSegError
from ..io.images import MAX_PIXELS
from ..io.outputs import check_free, output_paths

# Options that only a georeferenced raster's outputs use: on a plain picture each is a note
GIS_ONLY = ("bands", "stretch", "cog", "confidence", "vector", "zones")


@dataclass
class SegmentOptions:
    """How one file is segmented and which files are written (the ``segment`` flags of the
    same names). Checked when made: a bad value is one line naming the option."""

    tta: bool = False  # average the 8 flips/rotations
    opacity: float = 0.5  # of the overlay, 0-1
    gsd: float | None = None  # input metres per pixel, for areas where the file gives none
    input_gsd: float | str | None = None  # resample to the model's resolution: m/px or "auto"
    save_probabilities: bool = False
    overwrite: bool = False  # replace outputs; else an earlier run's complete set is kept
    max_pixels: int = MAX_PIXELS  # refuse larger pictures
    bands: tuple[int, ...] | None = None  # red, green, blue band numbers ("3,2,1" too)
    stretch: str | None = None  # to 8 bits: "p2,p98" | "LO,HI" | "none"; None: by data type
    nodata: float | None = None  # bands all equal to it: no data
    cog: bool = False  # Cloud-Optimised GeoTIFFs
    confidence: bool = False  # NAME_confidence.tif
    vector: bool = False  # the map as polygons too
    vector_format: str = "gpkg"  # or "geojson"
    mmu: str = "16px"  # minimum mapping unit of the polygons: m^2 ("25") or pixels ("16px")
    simplify: float = 1.0  # polygon simplification tolerance, pixels
    zones: str | None = None  # vector file of zones: class areas per zone

    def __post_init__(self):
        from ..gis.outputs import parse_mmu
        from ..gis.stretch import Scale, parse_bands

        if not 0 <= self.opacity <= 1:
            raise AerialSegError(f"--opacity must be between 0 and 1, not {self.opacity}")
        for name in ("gsd", "nodata"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (int, float)):
                raise AerialSegError(f"--{name} must be a number, not {value!r}")
        if self.gsd is not None and not self.gsd > 0:
            raise AerialSegError(f"--gsd must be > 0, not {self.gsd}")
        if self.input_gsd is not None and self.input_gsd != "auto":
            if isinstance(self.input_gsd, bool) or not isinstance(self.input_gsd, (int, float)):
                wrong = f"--input-gsd: metres per pixel or auto, not {self.input_gsd!r}"
                raise AerialSegError(wrong)
            if not self.input_gsd > 0:
                raise AerialSegError(f"--input-gsd must be > 0, not {self.input_gsd}")
        if not self.max_pixels >= 1:
            raise AerialSegError(f"--max-pixels must be >= 1, not {self.max_pixels}")
        if self.bands is not None and not isinstance(self.bands, str):
            self.bands = ",".join(map(str, self.bands))  # a list back from JSON, or a tuple
        self.bands = parse_bands(self.bands)
        Scale.parse(self.stretch)
        if self.vector_format not in ("gpkg", "geojson"):
            raise AerialSegError(f"--vector-format {self.vector_format}: gpkg or geojson")
        parse_mmu(self.mmu)
        if not self.simplify >= 0:
            raise AerialSegError(f"--simplify must be >= 0, not {self.simplify}")
        if self.zones is not None:
            self.zones = str(self.zones)
            if not Path(self.zones).is_file():
                raise AerialSegError(f"--zones {self.zones}: no such file")

    def given(self, names: tuple[str, ...]) -> list[str]:
        """The flags among ``names`` set to other than their defaults."""
        default = SegmentOptions()
        same = [n for n in names if getattr(self, n) != getattr(default, n)]
        return ["--" + n.replace("_", "-") for n in same]


@dataclass
class SegmentResult:
    """What :func:`segment_file` did: the files (by kind: labels, stats_json...), the
    statistics written to the JSON, and whether an earlier run's complete outputs were kept
    (``skipped``) instead. ``notes``: options that did not apply to this file, one line each."""

    input: Path
    outputs: dict[str, Path]
    stats: dict
    skipped: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def warning(self) -> str | None:
        """Why the map is not to be trusted (an image unlike the training data), if it is
        not; None for outputs kept from an earlier run (that run said it)."""
        return None if self.skipped else self.stats.get("warning")


Progress = Callable[[int, int], None]  # (windows just done, the file's windows in all)


def segment_file(
    segmenter,
    path: str | Path,
    out_dir: str | Path,
    options: SegmentOptions | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> SegmentResult:
    """Segment the image or raster at ``path`` with ``segmenter`` (see
    :func:`~aerialseg.inference.segmenter.load_segmenter`) into ``out_dir``, all outputs or
    none, as ``options`` say. ``name``: the outputs' stem (default: the file's). The raster
    is opened once; a georeferenced one is streamed, its outputs on its own grid (or the
    model's, with ``input_gsd``)."""
    options = options or SegmentOptions()
    if not isinstance(options, SegmentOptions):
        raise AerialSegError(f"options must be SegmentOptions, not {type(options).__name__}")
    path, out_dir = Path(path), Path(out_dir)
    name = name or path.stem
    if options.input_gsd is not None:
        check_model_gsd(segmenter)
    notes: list[str] = []
    dataset = _open(path, options, notes)
    if dataset is None:
        return _picture(segmenter, path, out_dir, name, options, progress, notes)
    try:
        if segmenter.scales != (1.0,):
            raise AerialSegError(f"{path}: georeferenced rasters run at --scales 1")
        return _raster(segmenter, path, dataset, out_dir, name, options, progress, notes)
    finally:
        dataset.close()  # RasterSource closes it too: closing twice is harmless


def _open(path: Path, options: SegmentOptions, notes: list[str]):
    """The raster opened by GDAL when it goes the GIS way, else None. Without the geo extra
    a GeoTIFF goes the in-memory way, with a note."""
    from ..gis import rasters

    asked = options.bands is not None or options.stretch is not None
    asked = asked or options.nodata is not None
    if rasters.rasterio_or_none() is None:
        if asked or _has_geotiff_keys(path):
            notes.append(
                f"{path}: GIS raster read as a plain picture (no CRS, --bands or --stretch); "
                "for that install the geo extra: pip install 'aerialseg[geo]'"
            )
        return None
    return rasters.open_raster(path, asked)


def _has_geotiff_keys(path: Path) -> bool:
    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        from PIL import Image

        with Image.open(path) as im:
            return 34735 in getattr(im, "tag_v2", {})  # GeoKeyDirectoryTag
    except Exception:  # noqa: BLE001 - unreadable: the in-memory reader says why
        return False


def _raster(seg, path, dataset, out_dir, name, options, progress, notes) -> SegmentResult:
    from ..gis.outputs import geo_output_paths
    from ..gis.rasters import RasterSource
    from ..gis.stretch import Scale
    from ..inference.tiling import count_windows
    from .raster import segment_raster_to_files

    vector = options.vector_format if options.vector else None
    paths = geo_output_paths(
        out_dir, name, options.confidence, options.save_probabilities, vector, bool(options.zones)
    )
    if not check_free(paths, options.overwrite, source=str(path)):
        return _kept(path, paths, notes)

    def factor(src) -> float:  # from the raster as opened: its CRS tells its resolution
        return resampling(seg, path, options, src, notes)[0]

    scale = Scale.parse(options.stretch)
    with RasterSource(path, options.bands, scale, factor, options.nodata, dataset) as src:
        if src.resample != 1:
            check_resampled_size(path, src.height, src.width, src.resample)
        if options.gsd and src.crs is not None:
            notes.append(f"{path}: --gsd left out: the raster's CRS gives its areas")
        on_window = _windows(progress, count_windows(src.height, src.width, seg.tiling))
        info = segment_raster_to_files(seg, src, paths, options, on_window)
    return SegmentResult(path, paths, info, notes=notes)


def _picture(seg, path, out_dir, name, options, progress, notes) -> SegmentResult:
    from ..io.images import read_image
    from .image import segment_image_to_files

    if options.nodata is not None:
        raise AerialSegError(f"{path}: --nodata is for GIS rasters (GeoTIFF, VRT...)")
    ignored = options.given(GIS_ONLY)
    if ignored:
        notes.append(
            f"{path}: {', '.join(ignored)} left out: they are for georeferenced rasters "
            "(GeoTIFF, VRT, a picture with a world file), and this is a plain picture"
        )
    factor, input_gsd = resampling(seg, path, options, None, notes)
    paths = output_paths(out_dir, name, options.save_probabilities)
    if not check_free(paths, options.overwrite, source=str(path)):
        return _kept(path, paths, notes)  # done by an earlier run: a rerun after a kill goes on
    rgb = read_image(path, max_pixels=options.max_pixels, hint="--max-pixels")
    if factor != 1:  # the model sees it resampled; the map comes back at full size
        h, w = (round(n * factor) for n in rgb.shape[:2])
        check_resampled_size(path, h, w, factor, options.max_pixels)
        seg = seg.resampled(factor)
    on_window = _windows(progress, seg.count_windows(*rgb.shape[:2]))
    gsd = options.gsd or input_gsd  # for areas
    info = segment_image_to_files(
        seg, rgb, paths, str(path), options.tta, options.opacity, gsd, on_window
    )
    return SegmentResult(path, paths, info, notes=notes)


def _kept(path: Path, paths: dict[str, Path], notes: list[str]) -> SegmentResult:
    stats = json.loads(paths["stats_json"].read_text())
    return SegmentResult(path, paths, stats, skipped=True, notes=notes)


def _windows(progress: Progress | None, total: int):
    return None if progress is None else (lambda n: progress(n, total))


def resampling(seg, path: Path, options, src=None, notes=None) -> tuple[float, float | None]:
    """How much to resample the input so that the model sees it at the resolution it was
    trained at (``input_gsd``), and the input's metres per pixel: (1, None) without it. A
    georeferenced raster ``src`` far from the model's resolution gets a note (``notes``)."""
    wanted = options.input_gsd  # None, metres per pixel, or "auto": from the raster's CRS
    if wanted is None and not (src is not None and seg.gsd):
        return 1.0, None
    gsd = wanted if wanted not in (None, "auto") else (_raster_gsd(src) if src else None)
    if gsd is None:
        if wanted == "auto":
            raise AerialSegError(
                f"{path}: --input-gsd auto reads the resolution of a georeferenced raster with "
                "a CRS; give it in metres per pixel instead (e.g. --input-gsd 0.5)"
            )
        return 1.0, None
    factor = gsd / seg.gsd
    if wanted is None:  # a hint only: resampling is asked for, never done behind one's back
        if not 1 / 1.5 <= factor <= 1.5 and notes is not None:
            notes.append(
                f"{path}: {gsd:.3g} m per pixel, the model was trained at {seg.gsd:g}; "
                "--input-gsd auto resamples it to the model's resolution"
            )
        return 1.0, None
    return factor, gsd


def _raster_gsd(src) -> float | None:
    """A raster's metres per pixel (the root of a pixel's mean ground area), None without a
    CRS."""
    import numpy as np

    from ..gis.areas import pixel_areas

    if src.crs is None:
        return None
    areas, _ = pixel_areas(src)
    return float(np.sqrt(areas.mean()))


def check_resampled_size(path: Path, h: int, w: int, factor: float, max_pixels=None) -> None:
    """One line when ``input_gsd`` resamples the input (by ``factor``, to ``h`` x ``w``)
    too large for ``max_pixels`` or too small to map: under 32 pixels a side is a
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
    """``input_gsd`` needs the model's own resolution."""
    if not seg.gsd:
        raise AerialSegError(
            f"the model {seg.name} does not record the resolution it was trained at (train "
            "--gsd records it), so --input-gsd cannot resample to it; --scales F resamples by F"
        )
