import csv
import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")

from PIL import Image  # noqa: E402

from ..geo_helpers import scene, write_raster  # noqa: E402
from ..helpers import aerialseg_here as run_aerialseg  # noqa: E402  (main() in this process)


def test_segment_writes_georeferenced_outputs_and_reports_bad_rasters(tmp_path, tiny_model):
    photo, _ = scene(96, 128)
    good = write_raster(tmp_path / "ortho.tif", photo, nodata=0)
    write_raster(tmp_path / "grey.tif", photo[:1])
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\x01" * 64)
    Image.fromarray(photo.transpose(1, 2, 0)).save(tmp_path / "plain.png")
    out = tmp_path / "out"
    zones = tmp_path / "parcels.gpkg"
    import shapely

    box = shapely.box(500_000, 2_790_000 - 20, 500_030, 2_790_000)  # 60 x 40 pixels
    pyogrio.raw.write(
        zones,
        shapely.to_wkb([box]),
        field_data=[],
        fields=[],
        driver="GPKG",
        crs="EPSG:32640",
        geometry_type="Polygon",
    )
    r = run_aerialseg(
        "segment",
        good,
        tmp_path / "grey.tif",
        tmp_path / "broken.tif",
        tmp_path / "plain.png",
        "--model",
        tiny_model,
        "--window",
        "64",
        "--out",
        out,
        "--vector",
        "--confidence",
        "--mmu",
        "0",
        "--simplify",
        "0",
        "-q",  # pixel-exact polygons: areas must agree
        "--zones",
        zones,
    )
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("aerialseg: error:")]
    assert len(errors) == 2, r.stderr
    assert "grey.tif: has 1 band, not 3; pick them with --bands" in r.stderr
    assert "broken.tif: cannot read" in r.stderr
    assert "Traceback" not in r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(("grey", "broken", "."))]
    assert {
        "ortho_labels.tif",
        "ortho_confidence.tif",
        "ortho_polygons.gpkg",
        "ortho_labels.qml",
        "ortho_stats.json",
        "plain_labels.png",
    } <= set(names)
    # the summary names the kinds of file written, and only those
    listed = _summary_kinds(r.stdout)
    assert {"*_labels.tif", "*_confidence.tif", "*_polygons.gpkg", "*_zones.csv"} <= listed
    assert {"*_labels.png", "*_figure.png"} <= listed  # plain.png's
    assert all(any(n.endswith(k[1:]) for n in names) for k in listed), (listed, names)
    with rasterio.open(good) as src, rasterio.open(out / "ortho_labels.tif") as lab:
        assert lab.crs == src.crs and lab.transform == src.transform
        labels = lab.read(1)
    stats = json.loads((out / "ortho_stats.json").read_text())
    assert stats["crs"] == "EPSG:32640"
    area = {c["class"]: c["area_m2"] for c in stats["classes"]}
    polygons = pyogrio.read_info(out / "ortho_polygons.gpkg", layer="polygons")
    assert polygons["features"] == stats["polygons"]["polygons"] > 0
    _, _, _, fields = pyogrio.raw.read(out / "ortho_polygons.gpkg", layer="polygons")
    for name, a in area.items():
        assert fields[2][fields[0] == name].sum() == pytest.approx(a, abs=0.01)
    assert int((labels != 255).sum()) == sum(c["pixels"] for c in stats["classes"])
    zone = next(csv.DictReader((out / "ortho_zones.csv").open()))
    part = labels[:40, :60]
    for c, name in enumerate(area):
        assert float(zone[f"{name}_m2"]) == pytest.approx((part == c).sum() * 0.25)
    # a rerun keeps what is done; a bad flag is one line before anything is read
    r = run_aerialseg("segment", good, "--model", tiny_model, "--out", out, "--bands", "3,2")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "--bands 3,2: expected three band numbers" in r.stderr
    r = run_aerialseg(
        "segment",
        good,
        "--model",
        tiny_model,
        "--out",
        out,
        "--vector",
        "--confidence",
        "--window",
        "64",
        "-q",
    )
    assert r.returncode == 0 and "kept the outputs of 1 image" in r.stdout, r.stderr
    assert np.array_equal(rasterio.open(out / "ortho_labels.tif").read(1), labels)


def test_without_the_geo_extra_plain_pictures_work_and_geotiffs_say_why(tmp_path, tiny_model):
    blocker = tmp_path / "no_geo"
    for name in ("rasterio", "pyogrio", "shapely", "pyproj"):  # as if never installed
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('no {name}')\n")
    photo, _ = scene(48, 64)
    write_raster(tmp_path / "ortho.tif", photo)
    Image.fromarray(photo.transpose(1, 2, 0)).save(tmp_path / "plain.png")
    out = tmp_path / "out"
    r = run_aerialseg(
        "segment",
        tmp_path / "plain.png",
        tmp_path / "ortho.tif",
        "--model",
        tiny_model,
        "--out",
        out,
        "-q",
        env={"PYTHONPATH": str(blocker)},
    )
    assert r.returncode == 0, r.stderr
    assert "ortho.tif: GIS raster read as a plain picture" in r.stderr
    assert "pip install 'aerialseg[geo]'" in r.stderr
    assert (out / "plain_labels.png").exists() and (out / "ortho_labels.png").exists()
    assert not list(out.glob("*.tif"))


def _summary_kinds(stdout: str) -> set[str]:
    summary = next(line for line in stdout.splitlines() if line.startswith("segmented "))
    return set(summary.partition("(")[2].rstrip(")").split(", ")) - {""}


def test_the_summary_of_a_gis_run_lists_no_pictures_it_did_not_write(tmp_path, tiny_model):
    photo, _ = scene(64, 80)
    raster = write_raster(tmp_path / "ortho.tif", photo)
    out = tmp_path / "out"
    r = run_aerialseg("segment", raster, "--model", tiny_model, "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    listed = _summary_kinds(r.stdout)
    assert listed == {
        "*_labels.tif",
        "*_labels.tif.aux.xml",
        "*_labels.qml",
        "*_stats.json",
        "*_stats.csv",
    }, r.stdout
    assert {p.name for p in out.iterdir()} == {"ortho" + k[1:] for k in listed}


def test_a_blank_raster_is_flagged_like_a_blank_picture(tmp_path, tiny_model):
    """The warning of an image unlike the training data holds on the streamed GIS path too:
    one line, and in the statistics, with the confidence the in-memory path measures."""
    from aerialseg.inference.segmenter import load_segmenter

    photo, _ = scene(64, 80)
    out = tmp_path / "out"
    for name, data in (("ortho", photo), ("black", np.zeros_like(photo))):
        raster = write_raster(tmp_path / f"{name}.tif", data)
        # fp32 on both sides: bf16 sums can differ in the last bits between two processes
        r = run_aerialseg(
            "segment", raster, "--model", tiny_model, "--out", out, "-q", "--precision", "fp32"
        )
        assert r.returncode == 0, r.stderr
        stats = json.loads((out / f"{name}_stats.json").read_text())
        seg = load_segmenter(tiny_model, precision="fp32")
        _, expected = seg.segment_confidence(data.transpose(1, 2, 0))
        assert abs(stats["mean_confidence"] - expected) < 1e-3
        uniform = f"{name}.tif: warning: the image is almost uniform"
        assert (uniform in r.stderr) == (name == "black"), r.stderr
        if name == "ortho":  # an untrained model is unsure of a picture, and says so
            assert "ortho.tif: warning: the model is unsure" in r.stderr, r.stderr
        else:
            assert "uniform" in stats["warning"]
    # nothing but nodata: said as such, in one line
    raster = write_raster(tmp_path / "empty.tif", photo, mask=np.zeros(photo.shape[1:], bool))
    r = run_aerialseg("segment", raster, "--model", tiny_model, "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().endswith("empty.tif: warning: the image holds no data (every pixel "
                                     "is nodata): there is nothing to map"), r.stderr  # fmt: skip
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_input_gsd_resamples_to_the_resolution_the_model_records(tmp_path):
    from aerialseg.classes import DUBAI
    from aerialseg.models import create_model
    from aerialseg.models.checkpoint import save_checkpoint

    from ..geo_helpers import utm_transform

    model = save_checkpoint(
        tmp_path / "m.safetensors",
        create_model("unet", base_filters=4),
        DUBAI,
        train_config={"gsd": 1.0},
    )
    photo, _ = scene(96, 128)
    ortho = write_raster(tmp_path / "ortho.tif", photo, transform=utm_transform(0.5))
    Image.fromarray(photo.transpose(1, 2, 0)).save(tmp_path / "plain.png")
    common = ("--model", model, "--window", "64", "-q")
    # without the flag: the raster's own grid, and a note that it is finer than the model's
    r = run_aerialseg("segment", ortho, "--out", tmp_path / "as-is", *common)
    assert r.returncode == 0, r.stderr
    assert "0.5 m per pixel, the model was trained at 1; --input-gsd auto" in r.stderr
    with rasterio.open(tmp_path / "as-is" / "ortho_labels.tif") as lab:
        assert lab.shape == (96, 128)
    # auto: the outputs lie on the model's 1 m grid over the same ground
    out = tmp_path / "model-grid"
    r = run_aerialseg("segment", ortho, "--input-gsd", "auto", "--out", out, *common)
    assert r.returncode == 0 and "note" not in r.stderr, r.stderr
    with rasterio.open(ortho) as src, rasterio.open(out / "ortho_labels.tif") as lab:
        assert lab.shape == (48, 64) and lab.transform.a == 1.0 and lab.bounds == src.bounds
    stats = json.loads((out / "ortho_stats.json").read_text())
    assert sum(c["area_m2"] for c in stats["classes"]) == pytest.approx(48 * 64)
    # a plain picture: the map comes back at the picture's size; areas from --input-gsd
    r = run_aerialseg(
        "segment", tmp_path / "plain.png", "--input-gsd", "0.5", "--out", out, *common
    )
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(out / "plain_labels.png")).shape == (96, 128)
    stats = json.loads((out / "plain_stats.json").read_text())
    assert sum(c["area_m2"] for c in stats["classes"]) == pytest.approx(96 * 128 * 0.25)
    # mistakes: one line each, nothing written
    bad = tmp_path / "bad"
    r = run_aerialseg(
        "segment", tmp_path / "plain.png", "--input-gsd", "auto", "--out", bad, *common
    )
    assert r.returncode == 1 and "plain.png: --input-gsd auto reads the resolution" in r.stderr
    r = run_aerialseg("segment", ortho, "--input-gsd", "0", "--out", bad, *common)
    assert r.returncode == 2 and "metres per pixel (> 0) or auto, not '0'" in r.stderr
    for source in (ortho, tmp_path / "plain.png"):  # centimetres typed as metres
        r = run_aerialseg("segment", source, "--input-gsd", "0.05", "--out", bad, *common)
        assert r.returncode == 1 and "it would be 6 x 5 pixels, too small to map" in r.stderr
    tiny = save_checkpoint(tmp_path / "t.safetensors", create_model("unet", base_filters=4), DUBAI)
    r = run_aerialseg("segment", ortho, "--input-gsd", "0.5", "--out", bad, "--model", tiny, "-q")
    assert r.returncode == 2 and "model t does not record the resolution" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert not bad.exists() or not any(bad.iterdir())
