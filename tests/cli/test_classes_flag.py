"""``--classes FILE`` on segment, evaluate, segment-batch and finetune, through the real CLI."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from aerialseg.classes import DUBAI, IGNORE_INDEX, ClassTable
from aerialseg.cli import main
from aerialseg.models.checkpoint import read_metadata

from ..helpers import make_scene, tiny_checkpoint

# the model's classes backwards, other colours, names in other case
REVERSED = {
    "classes": [
        {"name": n.lower(), "color": f"#{10 * i:02X}{200 - 10 * i:02X}{30 * i:02X}"}
        for i, n in enumerate(reversed(DUBAI.names))
    ],
    "background": ["unlabeled"],
}
NEW = {
    "classes": [
        {"name": "Tree", "color": "#006400"},
        {"name": "Grass", "color": "#00C800"},
        {"name": "Crop", "color": "#C8C800"},
        {"name": "Road", "color": "#808080"},
        {"name": "Building", "color": "#FF0000"},
        {"name": "Water", "color": "#0000FF"},
    ]
}


def _table(tmp_path, d, name="legend.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.fixture
def parent(tmp_path):
    """A tiny model whose classes' biases differ: no pixel where all logits tie (an untrained
    net has dead pixels whose features are all 0), so any order of classes gives one map."""
    import torch

    from aerialseg.models.checkpoint import load_checkpoint, save_checkpoint

    path = tiny_checkpoint(tmp_path / "parent.safetensors", seed=0)
    model, classes, _ = load_checkpoint(path)
    with torch.no_grad():
        model.head.bias.copy_(torch.arange(len(classes)) * 1e-3)
    return save_checkpoint(path, model, classes)


@pytest.fixture
def image(tmp_path):
    photo, _ = make_scene(48, 64, seed=3)
    path = tmp_path / "scene.png"
    Image.fromarray(photo).save(path)
    return path


def _segment(image, model, out, *extra):
    args = ["segment", str(image), "--model", str(model), "--out", str(out)]
    return main([*args, "--precision", "fp32", "--device", "cpu", "-q", *map(str, extra)])


def test_segment_writes_the_tables_indices_colours_and_names(tmp_path, parent, image):
    assert _segment(image, parent, tmp_path / "own") == 0
    table = _table(tmp_path, REVERSED)
    assert _segment(image, parent, tmp_path / "mine", "--classes", table) == 0
    own = np.asarray(Image.open(tmp_path / "own" / "scene_labels.png"))
    mine = np.asarray(Image.open(tmp_path / "mine" / "scene_labels.png"))
    assert len(np.unique(own)) > 1  # a map worth comparing
    assert np.array_equal(mine, len(DUBAI) - 1 - own)  # the same map, the table's indices
    mask = np.asarray(Image.open(tmp_path / "mine" / "scene_mask.png").convert("RGB"))
    colours = {e["name"]: e["color"] for e in REVERSED["classes"]}
    for i in np.unique(mine):
        name = REVERSED["classes"][i]["name"]
        rgb = tuple(int(colours[name][k : k + 2], 16) for k in (1, 3, 5))
        assert (mask[mine == i] == rgb).all(), name
    stats = json.loads((tmp_path / "mine" / "scene_stats.json").read_text())
    assert [c["class"] for c in stats["classes"]] == [e["name"] for e in REVERSED["classes"]]


@pytest.mark.parametrize("command", ["segment", "segment-batch", "evaluate"])
def test_names_the_model_does_not_know_are_one_line_and_exit_2(
    tmp_path, parent, image, tiny_dataset, capsys, command
):
    table = _table(tmp_path, NEW)
    out = tmp_path / "out"
    model = ["--model", str(parent), "--classes", str(table), "-q"]
    if command == "evaluate":
        argv = ["evaluate", "--data", str(tiny_dataset), *model]
    else:
        argv = [command, str(image), "--out", str(out), *model]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err == (
        f"aerialseg: error: {table}: classes Tree, Grass, Crop are not in the model (its "
        f"classes: {', '.join(DUBAI.names)}); teach them first: aerialseg finetune --classes "
        f"{table} ..."
    )
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_a_table_leaving_out_a_land_cover_class_is_refused(tmp_path, parent, image, capsys):
    d = {"classes": [c for c in REVERSED["classes"] if c["name"] != "road"]}
    assert _segment(image, parent, tmp_path / "out", "--classes", _table(tmp_path, d)) == 2
    assert "leaves out the model's class Road;" in capsys.readouterr().err


def test_a_bad_table_file_is_one_line(tmp_path, parent, image, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [{name: Road}]\n")
    assert _segment(image, parent, tmp_path / "out", "--classes", bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"aerialseg: error: {bad}: class table") and "\n" not in err


def test_evaluate_reads_the_masks_and_scores_by_the_table(tmp_path, parent, tiny_dataset, capsys):
    base = ["evaluate", "--model", str(parent), "--data", str(tiny_dataset), "--split", "all"]
    base += ["--json", "--precision", "fp32", "--device", "cpu", "-q"]
    assert main(base) == 0
    own = json.loads(capsys.readouterr().out)
    # the Dubai colours in another order, other names' case: the same scores per class
    d = {
        "classes": [
            {"name": n.upper(), "color": "#{:02X}{:02X}{:02X}".format(*c)}
            for n, c in reversed(list(zip(DUBAI.names, DUBAI.colors)))
        ],
        "background": ["UNLABELED"],
    }
    assert main([*base, "--classes", str(_table(tmp_path, d))]) == 0
    mine = json.loads(capsys.readouterr().out)
    assert list(mine["per_class_iou"]) == [n.upper() for n in reversed(DUBAI.names)]
    for name, iou in own["per_class_iou"].items():
        assert mine["per_class_iou"][name.upper()] == pytest.approx(iou, nan_ok=True)
    assert mine["pixel_accuracy"] == pytest.approx(own["pixel_accuracy"])


def _user_folder(root, size=48):
    """Two images whose labels (indices of NEW) paint Tree and Road squares."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(2):
        photo, _ = make_scene(size, size, seed=40 + i)
        labels = np.full((size, size), IGNORE_INDEX, np.uint8)
        labels[4:20, 4:20] = 0  # Tree: a class the parent never had
        labels[28:44, 28:44] = 3  # Road
        Image.fromarray(photo).save(root / "images" / f"img{i}.png")
        Image.fromarray(labels).save(root / "labels" / f"img{i}.png")
    return root


def test_finetune_teaches_a_new_legend_that_segment_then_uses(tmp_path, parent, image):
    table = _table(tmp_path, NEW)
    user = _user_folder(tmp_path / "user")
    new = tmp_path / "new.safetensors"
    argv = ["finetune", "--model", parent, "--images", user / "images", "--labels",
            user / "labels", "--out", new, "--classes", table, "--steps", "3",
            "--patch-size", "32", "--batch-size", "2", "--precision", "fp32",
            "--device", "cpu", "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert ClassTable.from_dict(read_metadata(new)["classes"]) == ClassTable.from_dict(NEW)
    assert _segment(image, new, tmp_path / "seg") == 0  # its own table: the legend's
    stats = json.loads((tmp_path / "seg" / "scene_stats.json").read_text())
    assert [c["class"] for c in stats["classes"]] == [c["name"] for c in NEW["classes"]]
    labels = np.asarray(Image.open(tmp_path / "seg" / "scene_labels.png"))
    assert labels.max() < len(NEW["classes"])


def test_segment_batch_follows_the_table_and_records_it(tmp_path, parent, image):
    table = _table(tmp_path, REVERSED)
    out = tmp_path / "batch"
    argv = ["segment-batch", image, "--model", parent, "--out", out, "--classes", table,
            "--precision", "fp32", "--device", "cpu", "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    stats = json.loads((out / "scene_stats.json").read_text())
    assert [c["class"] for c in stats["classes"]] == [e["name"] for e in REVERSED["classes"]]
    assert _segment(image, parent, tmp_path / "own") == 0
    own = np.asarray(Image.open(tmp_path / "own" / "scene_labels.png"))
    mine = np.asarray(Image.open(out / "scene_labels.png"))
    assert np.array_equal(mine, len(DUBAI) - 1 - own)
