"""Getting the Dubai dataset: from Kaggle with kagglehub, or from an archive downloaded by hand."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from ..errors import AerialSegError

KAGGLE_ID = "humansintheloop/semantic-segmentation-of-aerial-imagery"
KAGGLE_URL = f"https://www.kaggle.com/datasets/{KAGGLE_ID}"
HOW_TO = f"download the archive from {KAGGLE_URL} and run 'aerialseg download --from ARCHIVE.zip'"


def dataset_root(folder: Path) -> Path | None:
    """The folder holding 'Tile N/' (or images/ + masks/) at or below ``folder``."""
    for d in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if (d / "images").is_dir() and (d / "masks").is_dir():
            return d.parent if d.name.lower().startswith("tile") else d
    return None


def _check_free(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise AerialSegError(f"{out} exists and is not empty; choose another --out")


def extract_archive(archive: str | Path, out: str | Path) -> Path:
    """Unpack a zip of the dataset into ``out`` (refusing paths that escape it)."""
    archive, out = Path(archive), Path(out)
    if not archive.is_file():
        raise AerialSegError(f"{archive}: no such archive")
    _check_free(out)
    try:
        with zipfile.ZipFile(archive) as z:
            root = out.resolve()
            for name in z.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise AerialSegError(f"{archive}: entry {name!r} would land outside {out}")
            tmp = out.with_name(out.name + ".part")
            shutil.rmtree(tmp, ignore_errors=True)
            z.extractall(tmp)
    except zipfile.BadZipFile:
        raise AerialSegError(f"{archive}: not a zip archive") from None
    found = dataset_root(tmp)
    if found is None:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AerialSegError(f"{archive}: no 'Tile N/images' + 'Tile N/masks' folders inside")
    tmp.rename(out)
    return out / found.relative_to(tmp)


def download(out: str | Path) -> Path:
    """Fetch the dataset with kagglehub (needs internet and Kaggle access)."""
    out = Path(out)
    _check_free(out)
    try:
        import kagglehub
    except ImportError:
        raise AerialSegError(
            f"kagglehub is not installed (pip install kagglehub); or {HOW_TO}"
        ) from None
    try:
        path = Path(kagglehub.dataset_download(KAGGLE_ID))
    except Exception as e:  # noqa: BLE001 - network, auth, quota: all mean "get it by hand"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AerialSegError(f"could not download from Kaggle ({first[:200]}); {HOW_TO}") from None
    found = dataset_root(path)
    if found is None:
        raise AerialSegError(f"{path}: downloaded, but no 'Tile N' folders inside")
    shutil.copytree(found, out)
    return out
