"""The app's Save: a result already shown (perhaps corrected by hand) written as ``segment``
writes its files, plus the input picture; never segmented again here."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import AerialSegError
from ..io.images import save_image
from ..io.outputs import output_paths, write_outputs


def save_result(
    folder: str | Path,
    stem: str,
    rgb: np.ndarray,
    labels: np.ndarray,
    classes,
    model_name: str,
    extra: dict | None = None,
    geo=None,
) -> dict[str, Path]:
    """Write the input, colour mask, overlay, label PNG, figure and statistics of one result;
    with ``geo`` (where the picture lies: ``crs``, ``transform``, ``width``, ``height``) also
    the labels as a GeoTIFF in that CRS, with its legend files, as ``segment`` writes them.

    Everything is written into a hidden folder beside the outputs and moved into place only
    once complete, so a failure (disk full, folder removed) leaves no partial set behind. A
    stem already used in ``folder`` gets a -2, -3 ... suffix instead of overwriting.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".aerialseg-save-"))
    except OSError as e:
        raise AerialSegError(f"cannot write to {folder}: {e.strerror or e}") from None
    try:
        name, n = stem, 1
        while any(folder.glob(f"{name}_*")):
            n += 1
            name = f"{stem}-{n}"
        staged = {"input": tmp / f"{name}_input.png", **output_paths(tmp, name)}
        save_image(staged["input"], rgb)
        info = {"model": model_name, **(extra or {})}
        write_outputs(staged, rgb, labels, classes, name, extra=info)
        if geo is not None:
            from ..gis.outputs import write_label_geotiff

            staged.update(write_label_geotiff(tmp, name, labels, classes, geo))
        final = {k: folder / p.name for k, p in staged.items()}
        for k, p in staged.items():
            os.replace(p, final[k])
        return final
    except OSError as e:
        raise AerialSegError(f"cannot save into {folder}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
