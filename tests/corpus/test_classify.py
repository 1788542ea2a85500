"""``aerialseg classify train|evaluate|predict`` against the corpus: image folders and CIFAR
files that cannot be read, bad flags, bad models, bad images among good ones, outputs that
cannot be written. (Aerial-patch datasets: test_datasets.py.)"""

from __future__ import annotations

import json

import pytest

from ..helpers import write_cifar
from .cases import (
    BAD_FLAGS,
    BAD_IMAGES,
    MODEL_KINDS,
    ODD_IMAGES,
    bad_models,
    evil_cifar,
    good_image,
    png_bomb,
)
from .conftest import leftovers, refused, run_cli, skipped

TINY = ("--epochs", "1", "--base-filters", "4", "--dense", "8", "--batch-size", "16", "-q")


def _folder(tmp, bad=None):
    """An image folder of two classes, three images each; ``bad(folder)`` adds a bad file
    to class b and returns it."""
    root = tmp / "folder"
    for c in ("a", "b"):
        for i in range(3):
            good_image(root / c, f"{i}.png")
    return root, (bad(root / "b") if bad else None)


def _cifar_cut(tmp):
    root = write_cifar(tmp / "c")
    train = root / "cifar-100-python" / "train"
    train.write_bytes(train.read_bytes()[:1000])
    return root, train


# name -> (make(tmp) -> (data folder, the file the line names), what it says)
BAD_DATA = {
    "image-truncated": (lambda t: _folder(t, BAD_IMAGES["truncated-jpg"][0]), "cannot read image"),
    "image-text-named-jpg": (
        lambda t: _folder(t, BAD_IMAGES["text-named-jpg"][0]),
        "cannot read image",
    ),
    "image-png-bomb": (lambda t: _folder(t, lambda d: png_bomb(d / "bomb.png")), "is over the"),
    "image-unreadable": (lambda t: _folder(t, BAD_IMAGES["unreadable"][0]), "permission denied"),
    "image-symlink-loop": (
        lambda t: _folder(t, BAD_IMAGES["symlink-loop"][0]),
        "broken symbolic link",
    ),
    "one-class-folder": (
        lambda t: (good_image(t / "one" / "only").parents[1], "only"),
        "only one class folder",
    ),
    "empty-folder": (lambda t: ((t / "e").mkdir() or t / "e", "e"), "no images in class"),
    "cifar-truncated": (_cifar_cut, "not a CIFAR pickle file"),
    "cifar-pickle-that-runs-code": (
        lambda t: (evil_cifar(t / "evil", t / "PWNED"), "meta"),
        "refusing to load posix.system",
    ),
}


@pytest.mark.parametrize("kind", BAD_DATA)
def test_classify_train_bad_data(kind, cli, tmp_path):
    make, says = BAD_DATA[kind]
    data, name = make(tmp_path)
    out = tmp_path / "run"
    r = cli("classify", "train", "--data", data, "--out", out, *TINY)
    refused(r, str(name), says)
    assert leftovers(out) == []
    assert not (tmp_path / "PWNED").exists()  # the pickle was not run


@pytest.mark.parametrize("kind", BAD_FLAGS)
def test_classify_train_bad_flags(kind, cli, tmp_path):
    flags, says = BAD_FLAGS[kind]
    data = write_cifar(tmp_path / "c")
    r = cli("classify", "train", "--data", data, "--out", tmp_path / "run", "-q", *flags)
    refused(r, [], says)
    assert not (tmp_path / "run").exists()


def test_classify_train_out_is_a_file(cli, tmp_path):
    (tmp_path / "run").write_text("mine")
    r = cli("classify", "train", "--data", write_cifar(tmp_path / "c"), "--out", tmp_path / "run",
            *TINY)  # fmt: skip
    refused(r, "run", "exists and is not a folder")


def _models(classifier, segmenter):
    return bad_models(classifier, segmenter, "a segmentation model, not a classification model")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_classify_bad_model(kind, command, cli, classifier, segmenter, tmp_path):
    make, says = _models(classifier, segmenter)[kind]
    (tmp_path / "m").mkdir()
    model = make(tmp_path / "m")
    args = [good_image(tmp_path)] if command == "predict" else []
    r = cli("classify", command, *args, "--model", model, "-q")
    refused(r, str(model), says)
    assert not (tmp_path / "m" / "PWNED").exists()


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, classifier):
    """One ``classify predict --json`` run over every bad kind, every odd kind and a good
    image."""
    tmp = tmp_path_factory.mktemp("predict")
    bad = {}
    for kind, (make, _) in BAD_IMAGES.items():
        (tmp / kind).mkdir()
        bad[kind] = make(tmp / kind)
    odd = {kind: make(tmp / "odd") for kind, (make, _) in ODD_IMAGES.items()}
    good = good_image(tmp)
    r = run_cli("classify", "predict", *bad.values(), *odd.values(), good, "--model", classifier,
                "--json", "-q")  # fmt: skip
    return r, bad, odd, good


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_classify_predict_reports_a_bad_image_and_does_the_others(kind, predicted):
    r, bad, odd, good = predicted
    skipped(r, str(bad[kind]), BAD_IMAGES[kind][1])
    done = [json.loads(line)["image"] for line in r.out.splitlines()]
    assert len(r.error_lines) == len(bad) and len(done) == len(odd) + 1


@pytest.mark.parametrize("kind", ODD_IMAGES)
def test_classify_predict_takes_odd_images(kind, predicted):
    r, bad, odd, good = predicted
    (row,) = [json.loads(x) for x in r.out.splitlines() if json.loads(x)["image"] == str(odd[kind])]
    assert len(row["top"]) == 3 and abs(sum(p for _, p in row["top"]) - 1) < 0.5


def test_classify_predict_patches_outputs(cli, classifier, tmp_path, read_only_folder, full_disk):
    image = good_image(tmp_path)
    (tmp_path / "taken").write_text("mine")
    for out, says in (
        (tmp_path / "taken", "exists and is not a folder"),
        (read_only_folder / "maps", "cannot write in"),
    ):
        r = cli("classify", "predict", image, "--model", classifier, "--patches", "--out", out)
        refused(r, str(out), says)
    r = cli("classify", "predict", image, "--model", classifier, "--patches", "--out", full_disk)
    skipped(r, "good_", "No space left on device")
    assert leftovers(full_disk) == [] and leftovers(read_only_folder) == []


def test_classify_evaluate_confusion_into_a_file(cli, classifier, tmp_path):
    (tmp_path / "taken").write_text("mine")
    r = cli("classify", "evaluate", "--model", classifier, "--confusion", tmp_path / "taken/cm.png",
            "-q")  # fmt: skip
    refused(r, "taken", "exists and is not a folder")
