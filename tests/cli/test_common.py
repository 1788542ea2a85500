"""The conventions every command shares: flags generated from configs, one spelling for a
checkpoint (--model) and an architecture (--arch), fast start, no side effects on import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aerialseg.cli import COMMANDS, build_parser, main
from aerialseg.config import ClassifyConfig, TrainConfig

from ..helpers import run_aerialseg


def test_every_command_builds_and_every_config_flag_explains_itself():
    parser = build_parser()  # all commands, as `aerialseg X -h` would build them
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name, cfg in (("train", TrainConfig), ("classify", ClassifyConfig)):
        p = sub.choices[name]
        if name == "classify":
            p = next(a for a in p._actions if a.dest == "classify_command").choices["train"]
        flags = {a.dest: a for a in p._actions}
        for field in cfg.__dataclass_fields__:
            assert flags[field].help, f"{name} --{field} has no help"


def test_train_help_shows_defaults_and_allowed_values(capsys):
    with pytest.raises(SystemExit):
        main(["train", "-h"])
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert (
        "(default: 0.002)" in out
        and "{unet,unet-effl0,unet-effl0-fbn,unet-effl0-s4,unet-effl1,unet-effl2,unet-seed}" in out
        and "dice+focal" in out
    )


def test_old_spelling_of_arch_still_works_with_a_note(capsys):
    parser = build_parser({"train", "classify"})
    args = parser.parse_args(["train", "--model", "unet-seed", "--out", "r"])
    assert args.arch == "unet-seed"
    args = parser.parse_args(["classify", "train", "--model", "cnn-seed", "--out", "r"])
    assert args.arch == "cnn-seed"
    err = capsys.readouterr().err.splitlines()
    assert err == ["aerialseg: note: --model is deprecated here; use --arch"] * 2


def test_checkpoint_is_the_same_flag_as_model():
    parser = build_parser({"evaluate", "segment"})
    assert parser.parse_args(["evaluate", "--checkpoint", "m.safetensors"]).model == "m.safetensors"
    assert parser.parse_args(["segment", "x.jpg", "--model", "m.safetensors"]).model == (
        "m.safetensors"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--arch", "vgg"], "invalid choice: 'vgg' (choose from 'unet', 'unet-effl0'"),
        (["segment", "x.jpg", "--opacity", "2"], "argument --opacity: must be <= 1"),
        (["segment", "x.jpg", "--gsd", "-3"], "argument --gsd: must be > 0"),
        (["train", "--out", "r", "--batch-size", "0", "--data", "."], "batch size must be >= 1"),
        (["train", "--out", "r", "--minutes", "-1", "--data", "."], "minutes must be > 0"),
        (["train", "--out", "r", "--config", "{cfg}"], "lr must be a float, not 'fast'"),
        # a U-Net setting for the default unet-effl0-s4: named, before the data is read
        (
            ["train", "--out", "r", "--base-filters", "8", "--data", "."],
            "model 'unet-effl0-s4' takes no base_filters (--base-filters); its settings: "
            "num_classes",
        ),
        (
            ["train", "--out", "r", "--arch", "unet", "--context", "aspp", "--data", "."],
            "model 'unet' takes no context (--context); its settings: num_classes",
        ),
    ],
)
def test_bad_values_are_refused_before_anything_loads(tmp_path, args, message):
    (tmp_path / "c.json").write_text('{"lr": "fast"}')
    r = run_aerialseg(*[a.format(cfg=tmp_path / "c.json") for a in args], cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # no usage dump
    assert not (tmp_path / "r").exists()


def test_config_files_of_older_runs_still_load():
    assert TrainConfig.from_dict({"model": "unet-seed"}).arch == "unet-seed"


def test_version():
    from aerialseg import __version__

    r = run_aerialseg("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"aerialseg {__version__}"


def test_import_changes_nothing_in_the_process_and_help_imports_no_torch():
    code = (
        "import matplotlib; matplotlib.use('svg'); import os; m = os.umask(0o22); os.umask(m)\n"
        "import PIL.Image as I; lim = I.MAX_IMAGE_PIXELS\n"
        "import sys, aerialseg, aerialseg.cli\n"
        "assert matplotlib.get_backend() == 'svg' and I.MAX_IMAGE_PIXELS == lim\n"
        "assert os.umask(m) == m\n"
        "try:\n    aerialseg.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'aerialseg --help imported torch'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
