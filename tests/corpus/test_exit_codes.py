"""A few corpus cases as a user meets them, in a child process: the real exit status and the
real stderr (the in-process tests catch ``SystemExit`` and read captured text)."""

from __future__ import annotations

from ..helpers import run_aerialseg
from .cases import BAD_DATASETS, BAD_IMAGES, NON_UTF8_NAME, good_image, photo, save

# A terminal that takes UTF-8 strictly (as under en_US.UTF-8; C.UTF-8 lets Python print
# undecodable bytes back as they came, which hides a crash on such file names).
STRICT = {"PYTHONIOENCODING": "utf-8:strict"}


def one_error_line(r, *names: str, says: str) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("aerialseg: error: ")]
    assert len(lines) == 1, r.stderr
    assert all(n in lines[0] for n in names) and says in lines[0], lines[0]


def test_segment_goes_on_after_a_bad_file_and_exits_1(tmp_path, tiny_model):
    make, says = BAD_IMAGES["truncated-png"]
    bad = make(tmp_path / "in")
    good_image(tmp_path / "in")
    r = run_aerialseg("segment", tmp_path / "in", "--model", tiny_model, "--out", tmp_path / "o")
    assert r.returncode == 1
    one_error_line(r, str(bad), says=says)
    assert (tmp_path / "o" / "good_labels.png").is_file()


def test_train_and_evaluate_on_images_without_masks_exit_2(tmp_path, tiny_model):
    make, name, says = BAD_DATASETS["images-without-masks-folder"]
    data = make(tmp_path)
    for args in (
        ["train", "--data", data, "--out", tmp_path / "run", "--epochs", "1"],
        ["evaluate", "--data", data, "--model", tiny_model],
    ):
        r = run_aerialseg(*args)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        one_error_line(r, str(data), says=says)
    assert not (tmp_path / "run").exists()


def test_a_broken_yaml_config_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: [1\nlr: 0.1\n")
    r = run_aerialseg("train", "--data", tmp_path, "--out", tmp_path / "r", "--config",
                      tmp_path / "c.yaml")  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    one_error_line(r, "c.yaml", says="cannot parse config")


def test_file_names_that_are_not_utf8_print_on_a_strict_terminal(tmp_path, tiny_model, classifier):
    """Before: UnicodeEncodeError on print (classify) and in matplotlib's title (segment)."""
    image = save(tmp_path / "in" / NON_UTF8_NAME, photo(32, 40))
    r = run_aerialseg("segment", image, "--model", tiny_model, "--out", tmp_path / "o",
                      env=STRICT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "segmented 1 image" in r.stdout
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert len(names) == 6 and all(n.startswith(NON_UTF8_NAME[:-4]) for n in names), names
    r = run_aerialseg("classify", "predict", image, "--model", classifier, env=STRICT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(tmp_path / "in" / "caf\ufffd \ufffd.png: ")), r.stdout
