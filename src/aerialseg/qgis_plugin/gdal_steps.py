"""GDAL steps the plugin takes on the input before aerialseg reads it, in QGIS's own Python
(whose GDAL has GEOS): virtual rasters in the run's work folder, never a copy of the pixels.
aerialseg leaves pixels without data (GDAL's masks: nodata, alpha, internal mask) out of every
output, so a mask becomes an alpha band and aerialseg needs no option for it. GDAL's
exceptions are not switched on: that is global state of QGIS's Python, not the plugin's."""

from qgis.core import QgsProcessingException


def gdal():
    from osgeo import gdal

    return gdal


def opens(path: str, kind: str) -> bool:
    """Whether GDAL opens ``path`` as a ``kind`` ("raster" or "vector") dataset, quietly."""
    g = gdal()
    flag = g.OF_RASTER if kind == "raster" else g.OF_VECTOR
    g.PushErrorHandler("CPLQuietErrorHandler")
    try:
        return g.OpenEx(path, flag) is not None
    except RuntimeError:  # another plugin switched GDAL's exceptions on
        return False
    finally:
        g.PopErrorHandler()


def _call(step, what: str, *args, **kwargs):
    """``step(*args, **kwargs)`` (a gdal utility), its failure as one line about ``what``."""
    g = gdal()
    g.ErrorReset()
    try:
        out = step(*args, **kwargs)
    except RuntimeError as e:
        out, reason = None, str(e)
    else:
        reason = g.GetLastErrorMsg()
    if out is None:
        raise QgsProcessingException(f"{what}: {(reason or 'GDAL failed').splitlines()[0]}")
    return out


def extent_vrt(source: str, box, vrt: str) -> str:
    """``source`` cut to ``box`` (a QgsRectangle in its CRS) as a VRT."""
    win = [box.xMinimum(), box.yMaximum(), box.xMaximum(), box.yMinimum()]
    _call(gdal().Translate, "EXTENT: does not overlap the INPUT layer", vrt, str(source),
          format="VRT", projWin=win)  # fmt: skip
    return vrt


def masked_vrt(source: str, polygons: str, vrt: str) -> str:
    """``source`` on its own grid with an alpha band that is 0 outside ``polygons`` (a vector
    file, ``path|layername=NAME`` as QGIS names one; any CRS: GDAL reprojects it) and where
    ``source`` already had no data (an RGBA input keeps its 4 bands: GDAL folds its alpha
    into the new one). A pixel is inside when its centre is."""
    path, _, layer = polygons.partition("|layername=")
    src = _call(gdal().Open, "INPUT", str(source))
    gt = src.GetGeoTransform()
    if gt[2] or gt[4]:
        raise QgsProcessingException("MASK: the INPUT raster is rotated; warp it north-up first")
    w, h = src.RasterXSize, src.RasterYSize
    bounds = [gt[0], gt[3] + gt[5] * h, gt[0] + gt[1] * w, gt[3]]
    opts = {"cutlineLayer": layer.split("|")[0]} if layer else {}
    out = _call(gdal().Warp, "MASK", vrt, src, format="VRT", cutlineDSName=path, dstAlpha=True,
                outputBounds=bounds, width=w, height=h, dstSRS=src.GetProjection(),
                resampleAlg="near", **opts)  # fmt: skip
    out.SetGeoTransform(gt)  # the warper's own is off by float rounding; the grid must be equal
    out = None  # written on close
    return vrt
