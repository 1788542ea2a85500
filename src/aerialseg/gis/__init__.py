"""GIS inputs beyond rasters: labels drawn as vector shapes (see :mod:`.vector_labels`).

Nothing is imported here: GDAL, shapely and pyproj are the optional ``[geo]`` extra, loaded by
the functions that need them.
"""
