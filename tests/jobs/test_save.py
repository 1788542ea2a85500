import json
import time

import numpy as np
import pytest
from PIL import Image

from aerialseg.classes import DUBAI
from aerialseg.errors import AerialSegError
from aerialseg.io.outputs import stats_line, timestamped_stem
from aerialseg.jobs.save import save_result

from ..helpers import make_scene


def test_save_result_writes_a_complete_set_and_never_overwrites(tmp_path):
    rgb, labels = make_scene(40, 60, seed=1)
    stem = timestamped_stem("my capture!", when=0)
    assert stem == "my-capture--" + time.strftime("%Y%m%d-%H%M%S", time.localtime(0))
    first = save_result(tmp_path, stem, rgb, labels, DUBAI, "tiny", {"tta": False})
    second = save_result(tmp_path, stem, rgb, labels, DUBAI, "tiny")
    assert first["input"].name == f"{stem}_input.png"
    assert second["input"].name == f"{stem}-2_input.png"
    for k in ("input", "mask", "overlay", "labels", "stats_json"):
        assert first[k].stat().st_size > 0, k
    assert np.array_equal(np.array(Image.open(first["input"])), rgb)
    assert np.array_equal(np.array(Image.open(first["labels"])), labels)
    assert np.array_equal(np.array(Image.open(first["mask"])), DUBAI.colorize(labels))
    info = json.loads(first["stats_json"].read_text())
    assert info["model"] == "tiny" and info["width"] == 60 and info["height"] == 40
    assert sum(r["pixels"] for r in info["classes"]) == 40 * 60
    assert stats_line(first["stats_json"]).count("%") == len(np.unique(labels))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in [*first.values(), *second.values()]
    )  # no staging folder left behind


def test_save_result_into_an_unwritable_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rgb, labels = make_scene(20, 20, seed=2)
    with pytest.raises(AerialSegError, match="cannot write to"):
        save_result(blocker / "out", "x", rgb, labels, DUBAI, "tiny")
