"""The CLI run as a user would, checking files and exit codes: main() in this process (a
child process costs a second or two of imports each time; see helpers.aerialseg_here)."""

import json

import pytest

from ..helpers import aerialseg_here as aerialseg  # main() in this process: no imports to redo
from ..helpers import make_scene

TINY = [
    "--arch",
    "unet",
    "--patch-size",
    "32",
    "--batch-size",
    "4",
    "--patches-per-epoch",
    "8",
    "--base-filters",
    "4",
    "--examples",
    "2",
    "-q",
]


def test_train_then_evaluate_end_to_end(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    r = aerialseg("train", "--data", tiny_dataset, "--out", run, "--epochs", "2", *TINY)
    assert r.returncode == 0, r.stderr
    assert "Epoch 2/2" in r.stdout and "val_mIoU" in r.stdout
    for f in (
        "config.json",
        "history.csv",
        "best.safetensors",
        "last.safetensors",
        "curves.png",
        "examples.png",
        "split.json",
    ):
        assert (run / f).stat().st_size > 0, f
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    assert len((run / "history.csv").read_text().splitlines()) == 3
    assert json.loads((run / "config.json").read_text())["patch_size"] == 32

    split = json.loads((run / "split.json").read_text())
    # by default only what the model never trained on: on its own data, its validation images
    r = aerialseg(
        "evaluate", "--model", run / "best.safetensors", "--data", tiny_dataset, "--json", "-q"
    )
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(r.stdout)["images"]) == split["val"]
    assert "held-out validation images" in r.stderr  # says which images and why

    r = aerialseg(
        "evaluate",
        "--model",
        run / "best.safetensors",
        "--data",
        tiny_dataset,
        "--split",
        "all",
        "--json",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    assert "training images included" in r.stderr
    result = json.loads(r.stdout)
    assert set(result) >= {
        "pixel_accuracy",
        "mean_iou",
        "mean_iou_land_cover",
        "micro_jaccard",
        "per_class_iou",
        "confusion_matrix",
        "images",
    }
    assert len(result["images"]) == 6
    assert sum(map(sum, result["confusion_matrix"])) == 6 * 80 * 96

    r = aerialseg(
        "evaluate",
        "--model",
        run / "best.safetensors",
        "--data",
        tiny_dataset,
        "--split",
        "val",
        "--confusion",
        tmp_path / "cm.png",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    assert "mIoU (land cover)" in r.stdout and (tmp_path / "cm.png").stat().st_size > 0
    assert f"images: {len(split['val'])}" in r.stdout

    # resume: extend the same run by one epoch
    r = aerialseg("train", "--resume", run, "--epochs", "3", "-q")
    assert r.returncode == 0, r.stderr
    assert "resuming at epoch 3" in r.stdout and "Epoch 3/3" in r.stdout
    assert len((run / "history.csv").read_text().splitlines()) == 4


def test_seed_preset_trains_on_random_patch_split(tiny_dataset, tmp_path):
    r = aerialseg(
        "train",
        "--preset",
        "seed",
        "--data",
        tiny_dataset,
        "--out",
        tmp_path / "s",
        "--epochs",
        "1",
        *TINY[2:],  # the preset's arch, not --arch unet
    )
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "s/config.json").read_text())
    assert cfg["arch"] == "unet-seed" and cfg["split"] == "random-patch"
    assert cfg["zoom"] == 1 and cfg["color"] == 0  # the paper did not augment
    r = aerialseg(
        "evaluate",
        "--model",
        tmp_path / "s/best.safetensors",
        "--data",
        tiny_dataset,
        "--split",
        "val",
    )
    assert r.returncode == 2 and "no held-out image" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/nonexistent", "--out", "{tmp}/r"], "no such data folder"),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/r", "--arch", "vgg"],
            "invalid choice: 'vgg' (choose from 'unet', 'unet-effl0', 'unet-effl0-fbn', "
            "'unet-effl0-s4', 'unet-effl1', 'unet-effl2', 'unet-seed')",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/r", "--patch-size", "128"],
            "smaller than the 128x128 patch size",
        ),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/r", "--epochs", "1", "--minutes", "1"],
            "not both",
        ),
        (["train", "--resume", "{tmp}"], "not a run folder"),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/r", "--config", "{tmp}/c.json"],
            "unknown config keys: colour",
        ),
        (["evaluate", "--model", "{tmp}/c.json", "--data", "{data}"], "not an aerialseg model"),
    ],
)
def test_user_mistakes_give_one_line_and_no_run_folder(tiny_dataset, tmp_path, args, message):
    (tmp_path / "c.json").write_text('{"colour": "blue"}')
    args = [a.format(tmp=tmp_path, data=tiny_dataset) for a in args]
    r = aerialseg(*args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "r").exists()


def test_existing_run_folder_is_not_overwritten(tiny_dataset, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("mine")
    r = aerialseg("train", "--data", tiny_dataset, "--out", tmp_path / "r", *TINY)
    assert r.returncode == 2 and "--resume" in r.stderr
    assert (tmp_path / "r" / "keep.txt").read_text() == "mine"


def test_config_file_and_flags_override_in_order(tiny_dataset, tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 1\nlr: 0.005\narch: unet\nbase_filters: 4\n")
    r = aerialseg(
        "train",
        "--data",
        tiny_dataset,
        "--out",
        tmp_path / "r",
        "--config",
        tmp_path / "c.yaml",
        "--lr",
        "0.001",
        *TINY,
    )
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "r/config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["lr"] == 0.001


@pytest.fixture
def tiny_model(tmp_path):
    from aerialseg.classes import DUBAI
    from aerialseg.models import create_model
    from aerialseg.models.checkpoint import save_checkpoint

    return save_checkpoint(
        tmp_path / "tiny.safetensors", create_model("unet", base_filters=4), DUBAI
    )


def test_segment_writes_all_outputs_and_reports_bad_files(tiny_dataset, tiny_model, tmp_path):
    from PIL import Image

    extra = tmp_path / "extra"
    extra.mkdir()
    Image.new("RGB", (391, 257), (120, 90, 60)).save(extra / "odd.png")  # 3 and 2 windows and a bit
    (extra / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "seg"
    r = aerialseg(
        "segment",
        tiny_dataset,
        extra,
        "--model",
        tiny_model,
        "--out",
        out,
        "--window",
        "128",
        "--save-probabilities",
        "--gsd",
        "0.3",
        "-q",
    )
    assert r.returncode == 1
    assert "broken.jpg: cannot read image" in r.stderr and "1 failed" in r.stderr
    assert "odd.png: warning: the image is almost uniform" in r.stderr  # one flat colour
    assert "Traceback" not in r.stderr
    assert "segmented 7 images" in r.stdout
    import numpy as np

    labels = np.array(Image.open(out / "odd_labels.png"))
    assert labels.shape == (257, 391)
    probs = np.load(out / "odd_probs.npy")
    assert probs.shape == (257, 391, 6) and probs.dtype == np.float16
    p = probs.astype(np.float32)
    assert np.allclose(p.sum(-1), 1, atol=5e-3)
    # the label is the most probable class (up to float16 rounding of near-ties)
    chosen = np.take_along_axis(p, labels[..., None].astype(np.int64), -1)[..., 0]
    assert (chosen >= p.max(-1) - 1e-3).all()
    stats = json.loads((out / "odd_stats.json").read_text())
    assert stats["width"] == 391 and "area_m2" in stats["classes"][0]
    for suffix in ("_mask.png", "_overlay.jpg", "_figure.png", "_stats.csv"):
        assert (out / "Tile 2/images" / f"image_part_003{suffix}").is_file(), suffix

    # a second run keeps what an earlier run of the same image wrote, and refuses to replace
    # another image's outputs of the same name, unless asked
    before = (out / "odd_labels.png").stat().st_mtime_ns
    r = aerialseg("segment", extra / "odd.png", "--model", tiny_model, "--out", out, "-q")
    assert r.returncode == 0 and "kept the outputs of 1 image" in r.stdout, r.stderr
    assert (out / "odd_labels.png").stat().st_mtime_ns == before
    (tmp_path / "other").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "other" / "odd.png")
    r = aerialseg("segment", tmp_path / "other/odd.png", "--model", tiny_model, "--out", out)
    assert r.returncode == 1 and "exists (use --overwrite" in r.stderr
    r = aerialseg(
        "segment",
        extra / "odd.png",
        "--model",
        tiny_model,
        "--out",
        out,
        "--overwrite",
        "--tta",
        "-q",
    )
    assert r.returncode == 0, r.stderr


def test_segment_errors(tiny_model, tmp_path):
    r = aerialseg("segment", tmp_path / "nothing.jpg", "--model", tiny_model)
    assert r.returncode == 2 and "nothing.jpg: no such file or folder" in r.stderr
    r = aerialseg("segment", tmp_path, "--model", tiny_model)
    assert r.returncode == 2 and "no images found" in r.stderr
    r = aerialseg("segment", tmp_path, "--model", tiny_model, "--window", "100")
    assert r.returncode == 2 and "multiple of 16" in r.stderr
    r = aerialseg("segment", tmp_path, "--model", tiny_model, "--scales", "1,0")
    assert r.returncode == 2 and "--scales: must be >= 0.1" in r.stderr


def test_segment_at_several_scales(tiny_model, tmp_path):
    from PIL import Image

    Image.fromarray(make_scene(70, 90, seed=5)[0]).save(tmp_path / "scene.png")
    r = aerialseg("segment", tmp_path / "scene.png", "--model", tiny_model, "--out",
                  tmp_path / "out", "--scales", "0.5,1.5", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out" / "scene_labels.png").size == (90, 70)


def test_download_from_archive_and_offline_error(tiny_dataset, tmp_path):
    import shutil

    archive = shutil.make_archive(str(tmp_path / "kaggle"), "zip", tiny_dataset.parent)
    r = aerialseg("download", "--from", archive, "--out", tmp_path / "data")
    assert r.returncode == 0, r.stderr
    root = r.stdout.split("dataset ready at ")[1].split("\n")[0]
    r = aerialseg("train", "--data", root, "--out", tmp_path / "run", "--epochs", "1", *TINY)
    assert r.returncode == 0, r.stderr

    r = aerialseg("download", "--out", tmp_path / "data2")
    assert r.returncode == 2 and "--from ARCHIVE.zip" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = aerialseg("download", "--from", tmp_path / "nope.zip", "--out", tmp_path / "d3")
    assert r.returncode == 2 and "no such archive" in r.stderr


def test_every_option_left_out_and_every_file_skipped_is_one_note(tiny_model, tmp_path):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    rgb, _ = make_scene(40, 40, seed=5)
    Image.fromarray(rgb).save(folder / "a.webp")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4")
    (folder / "a.tfw").write_text("0.5\n0\n0\n-0.5\n0\n0\n")  # a side file: not reported
    flags = ("--model", tiny_model, "--window", "64", "-q", "--out", tmp_path / "out")
    r = aerialseg("segment", folder, *flags, "--vector", "--scale", "0,255")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("aerialseg: note:")]
    assert notes == [
        "aerialseg: note: --scale is deprecated here; use --stretch",
        f"aerialseg: note: {folder}: skipped 1 file, not images: report.pdf",
        f"aerialseg: note: {folder / 'a.webp'}: --stretch, --vector left out: they are for "
        "georeferenced rasters (GeoTIFF, VRT, a picture with a world file), and this is a "
        "plain picture",
    ], r.stderr
    assert (tmp_path / "out" / "a_labels.png").is_file()


@pytest.mark.parametrize("command", ["segment", "segment-batch"])
def test_every_segment_option_is_a_flag_of_both_commands(command, tmp_path):
    """segment_options reads SegmentOptions' fields by name from the parsed flags: each
    one must be a flag, with the dataclass's default."""
    import dataclasses

    from aerialseg.cli import build_parser
    from aerialseg.cli.segmentation import segment_options
    from aerialseg.jobs.segment import SegmentOptions

    args = build_parser([command]).parse_args([command, "x.png", "--out", str(tmp_path)])
    missing = [f.name for f in dataclasses.fields(SegmentOptions) if not hasattr(args, f.name)]
    assert not missing
    assert segment_options(args) == SegmentOptions()


def test_a_big_picture_streams_to_the_same_outputs(tiny_model, tmp_path):
    pytest.importorskip("rasterio")
    import numpy as np
    from PIL import Image

    photo, _ = make_scene(120, 160, seed=4)
    Image.fromarray(photo).save(tmp_path / "pic.png")
    outs = {}
    for way, pixels in (("memory", "1000000000"), ("streamed", "0")):  # "big": over the limit
        outs[way] = tmp_path / way
        r = aerialseg(
            "segment", tmp_path / "pic.png", "--model", tiny_model, "--out", outs[way], "-q",
            env={"AERIALSEG_STREAM_PIXELS": pixels},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in outs["memory"].iterdir())
    assert names == sorted(p.name for p in outs["streamed"].iterdir())
    labels = [np.asarray(Image.open(outs[w] / "pic_labels.png")) for w in outs]
    assert np.array_equal(*labels)
    stats = [json.loads((outs[w] / "pic_stats.json").read_text()) for w in outs]
    assert stats[0] == stats[1]
