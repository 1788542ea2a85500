"""Everything that reads or writes georeferenced files, behind the optional ``[geo]`` extra:
rasters read as 8-bit RGB in windows (:mod:`.rasters`, :mod:`.stretch`), label masks drawn
as rasters or vector shapes (:mod:`.raster_masks`, :mod:`.vector_labels`), the GeoTIFFs,
polygons, zones and styles written for a map (:mod:`.outputs`, :mod:`.geotiff`,
:mod:`.vectors`, :mod:`.zones`, :mod:`.vector_style`) and pixels' ground areas
(:mod:`.areas`).

Nothing is imported here: GDAL, shapely and pyproj are loaded by the functions that need
them, so plain pictures work without the extra.
"""
