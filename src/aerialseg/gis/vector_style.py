"""The style stored inside a polygons GeoPackage, so QGIS draws it by class when it is opened.

QGIS keeps layer styles in a GeoPackage's ``layer_styles`` table (its own convention, which
it reads when a layer is loaded: the row for the layer with ``useAsDefault`` set). aerialseg
writes that row itself: a categorized renderer on the ``class`` field, filled in the display
colours (a transparent class is drawn not at all). No QGIS is needed to write it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..classes import ClassTable
from ..errors import AerialSegError

STYLE_NAME = "aerialseg classes"

# the table as QGIS creates it (QgsOgrProviderUtils::saveStyle), and registered like QGIS's:
# an attributes table in gpkg_contents, so GDAL and QGIS list and read it
LAYER_STYLES = """
CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256),
    f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
    useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)"""


def polygon_style_qml(classes: ClassTable, field: str = "class") -> str:
    """A QGIS vector style (.qml): polygons categorized by ``field`` (the class name), each
    category filled in its class's display colour, without outlines (the polygons tile the
    map edge to edge, like the labels raster's pixels)."""
    cats, symbols = [], []
    for i, (name, rgba) in enumerate(zip(classes.names, classes.display)):
        n = quoteattr(name)
        cats.append(f'      <category value={n} symbol="{i}" label={n} render="true"/>\n')
        symbols.append(_fill_symbol(i, rgba))
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22" styleCategories="Symbology">\n'
        f'  <renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} symbollevels="0" '
        'enableorderby="0" forceraster="0">\n'
        f"    <categories>\n{''.join(cats)}    </categories>\n"
        f"    <symbols>\n{''.join(symbols)}    </symbols>\n"
        "  </renderer-v2>\n"
        "</qgis>\n"
    )


def _fill_symbol(name: int, rgba: tuple[int, int, int, int]) -> str:
    color = ",".join(str(v) for v in rgba)
    options = {
        "color": color,
        "style": "solid",
        "outline_style": "no",
        "outline_color": color,
        "outline_width": "0",
        "joinstyle": "bevel",
    }
    opts = "".join(
        f'            <Option name="{k}" type="QString" value="{v}"/>\n' for k, v in options.items()
    )
    return (
        f'      <symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">\n'
        '        <layer class="SimpleFill" enabled="1" locked="0" pass="0">\n'
        f'          <Option type="Map">\n{opts}          </Option>\n'
        "        </layer>\n"
        "      </symbol>\n"
    )


def store_gpkg_style(path: Path, layer: str, classes: ClassTable) -> None:
    """Write the class style of ``layer`` into the GeoPackage ``path`` as its default style
    (replacing an earlier one of ours for that layer)."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            geom = _geometry_column(db, layer)
            db.execute(LAYER_STYLES)
            db.execute(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
                "description, last_change) VALUES ('layer_styles', 'attributes', "
                "'layer_styles', '', ?)",
                (now,),
            )
            db.execute(
                "DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?",
                (layer, STYLE_NAME),
            )
            db.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (layer,))
            db.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
                "owner, ui, update_time) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL, ?)",
                (layer, geom, STYLE_NAME, polygon_style_qml(classes), _describe(classes), now),
            )
    except sqlite3.Error as e:
        raise AerialSegError(f"{path}: cannot store the layer style ({e})") from None


def _geometry_column(db: sqlite3.Connection, layer: str) -> str:
    """The layer's geometry column: QGIS finds a stored style by table *and* column."""
    row = db.execute(
        "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
    ).fetchone()
    if row is None:
        raise sqlite3.Error(f"no geometry column for layer {layer!r}")
    return row[0]


def _describe(classes: ClassTable) -> str:
    return "Land-cover classes by display colour: " + ", ".join(classes.names)
