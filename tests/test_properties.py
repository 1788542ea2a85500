"""Property tests (hypothesis): invariants checked on many generated cases, not a few picked.

- class tables: mask colours -> labels -> colours round-trips for any table; unknown colours
  are counted and ignored; tables survive to_dict/from_dict;
- tiling: for any image, window, overlap and border the windows cover every pixel, the
  spline ramps of neighbours sum to 1, and a model that predicts the same probabilities
  everywhere is blended back to exactly those probabilities (no seam, no gap, no bump);
  the outputs ``segment`` streams to files hold the labels of the in-memory prediction;
- configs: any valid config survives to_dict/from_dict, JSON, and the command-line flags.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from aerialseg.classes import IGNORE_INDEX, ClassTable
from aerialseg.config import ClassifyConfig, TrainConfig, resolve_config
from aerialseg.config_fields import field_choices
from aerialseg.inference.segmenter import Segmenter, predict_bands
from aerialseg.inference.tiling import Tiling, spline_ramp, spline_window
from aerialseg.models import create_model

FAST = settings(max_examples=60, deadline=None)
SLOW = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------------------- class tables

colours = st.tuples(*[st.integers(0, 255)] * 3)


@st.composite
def class_tables(draw):
    """Any valid table: 1-30 classes of distinct colours and names, some ignore colours."""
    cols = draw(st.lists(colours, min_size=1, max_size=34, unique=True))
    n = draw(st.integers(1, min(30, len(cols))))
    names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=n, max_size=n, unique=True))
    background = draw(st.lists(st.sampled_from(names), unique=True, max_size=n - 1))
    return ClassTable(tuple(names), tuple(cols[:n]), tuple(cols[n:]), tuple(background))


@FAST
@given(class_tables(), st.data())
def test_labels_to_colours_and_back(table, data):
    h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    labels = np.array(
        data.draw(st.lists(st.integers(0, len(table) - 1), min_size=h * w, max_size=h * w)),
        dtype=np.uint8,
    ).reshape(h, w)
    mask = table.colorize(labels)
    back, unknown = table.encode(mask)
    assert np.array_equal(back, labels) and unknown == 0


@FAST
@given(class_tables(), st.lists(colours, min_size=1, max_size=40))
def test_any_mask_colour_is_its_class_or_ignored_and_counted(table, pixels):
    mask = np.array(pixels, dtype=np.uint8).reshape(1, -1, 3)
    labels, unknown = table.encode(mask)
    for colour, label in zip(pixels, labels[0]):
        if colour in table.colors:
            assert label == table.colors.index(colour)
        else:
            assert label == IGNORE_INDEX
    known = set(table.colors) | set(table.ignore_colors)
    assert unknown == sum(c not in known for c in pixels)
    kept = labels != IGNORE_INDEX
    assert np.array_equal(table.colorize(labels)[kept], mask[kept])


@FAST
@given(class_tables())
def test_class_table_dict_round_trip(table):
    d = json.loads(json.dumps(table.to_dict()))
    assert ClassTable.from_dict(d) == table


# ---------------------------------------------------------------------------- tiling

tilings = st.builds(
    Tiling,
    window=st.integers(4, 16).map(lambda k: 16 * k),
    overlap=st.floats(0, 0.5),
    border=st.integers(0, 48),
    batch_size=st.integers(1, 4),
)


@FAST
@given(st.integers(1, 60))
def test_a_ramp_and_its_mirror_sum_to_one(n):
    r = spline_ramp(n)
    assert np.allclose(r + r[::-1], 1) and np.all(np.diff(r) > 0) and 0 < r[0] and r[-1] < 1


@FAST
@given(st.integers(1, 3000), st.integers(1, 3000), tilings)
@example(1, 121, Tiling(window=144, overlap=0.5, border=48))  # fitted to 128 < two 72-px ramps
def test_windows_cover_every_pixel_and_neighbours_blend_to_one(h, w, tiling):
    rows, cols, win_h, win_w, ramp = tiling.plan(h, w)
    b = tiling.border
    for starts, win, n in ((rows, win_h, h), (cols, win_w, w)):
        length = n + 2 * b
        assert starts[0] == 0 and starts[-1] + win == length and starts == sorted(starts)
        weight = spline_window(win, ramp)
        total = np.zeros(length)
        for s in starts:
            total[s : s + win] += weight
        assert np.all(total[b : b + n] > 0)  # every image pixel is covered, with weight
        # neighbours strided by window - ramp overlap by one ramp: there, their weights
        # (one falling, one rising) sum to exactly 1
        for s0, s1 in zip(starts, starts[1:]):
            if s1 - s0 == win - ramp and ramp:
                assert np.allclose(weight[s1 - s0 :] + weight[: s0 + win - s1], 1)


@pytest.fixture
def one_thread():
    """Hundreds of tiny forward passes: one thread each is many times faster than two that
    wait for each other on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def constant_model(probs: np.ndarray):
    """A real network whose head is set to predict ``probs`` for every pixel: its weights
    are zero and its bias the log-probabilities."""
    model = create_model("unet", base_filters=4, num_classes=len(probs))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.log(torch.from_numpy(probs)))
    return model.eval()


@SLOW
@pytest.mark.usefixtures("one_thread")
@given(
    st.integers(1, 160),
    st.integers(1, 160),
    tilings,
    st.booleans(),
    st.lists(st.floats(0.05, 1), min_size=2, max_size=6),
)
def test_blending_a_constant_prediction_gives_it_back_everywhere(h, w, tiling, tta, p):
    tta = tta and h * w <= 64 * 64  # 8 passes per window: on small images only (time)
    probs = np.array(p, dtype=np.float32) / np.float32(sum(p))
    model = constant_model(probs)
    rgb = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    next_row = 0
    for y, band in predict_bands(model, rgb, "fp32", tiling, tta):
        assert y == next_row and band.shape[1:] == (w, len(probs))  # in order, no overlap
        assert np.allclose(band, probs, atol=1e-5), np.abs(band - probs).max()
        next_row = y + len(band)
    assert next_row == h  # every row, once


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return Segmenter(create_model("unet", base_filters=4).eval(), _dubai(), precision="fp32")


def _dubai():
    from aerialseg.classes import DUBAI

    return DUBAI


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(8, 200), st.integers(8, 200), st.sampled_from([64, 96, 128]))
def test_streamed_outputs_hold_the_in_memory_labels(segmenter, one_thread, tmp_path, h, w, window):
    from aerialseg.io.outputs import output_paths
    from aerialseg.jobs.image import segment_image_to_files

    segmenter.tiling = Tiling(window=window, overlap=0.25)
    rgb = np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    paths = output_paths(tmp_path / f"{h}x{w}x{window}", "x", probabilities=True)
    segment_image_to_files(segmenter, rgb, paths, "x")
    labels = np.array(Image.open(paths["labels"]))
    assert np.array_equal(labels, segmenter.segment(rgb))
    probs = np.load(paths["probs"]).astype(np.float32)
    assert np.allclose(probs, segmenter.predict_proba(rgb), atol=2e-3)  # float16 on disk


# ---------------------------------------------------------------------------- configs


def _value(f: dataclasses.Field):
    """A strategy for any valid value of a config field, from its annotation and metadata."""
    meta, t = f.metadata, str(f.type)
    optional, t = " | None" in t, t.replace(" | None", "")
    choices = field_choices(f)
    low, high = meta.get("low"), meta.get("high")
    if choices is not None:
        s = st.sampled_from(list(choices))
    elif t == "bool":
        s = st.booleans()
    elif t == "int":
        s = st.integers(int(low) + bool(meta.get("low_open")) if low is not None else -(10**6),
                        int(high) if high is not None else 10**6)  # fmt: skip
    elif t == "float":
        lo = low if low is not None else -1e6
        s = st.floats(lo, high if high is not None else 1e6, exclude_min=bool(meta.get("low_open")))
    elif t == "str":
        s = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    elif t == "list[str]":  # given on the command line as A,B,...: no commas, no blank items
        item = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=","),
                       min_size=1, max_size=6).filter(lambda v: v.strip() == v and v)  # fmt: skip
        s = st.lists(item, max_size=3)
    elif t == "list[float]":
        s = st.lists(st.floats(0, 100), min_size=1, max_size=6)
    else:
        raise AssertionError(f"no strategy for {f.name}: {f.type}")
    return st.none() | s if optional else s


MACHINE = ("device",)  # checked against this machine (another helper's field): left at default


@st.composite
def configs(draw, cls):
    values = {f.name: draw(_value(f)) for f in dataclasses.fields(cls) if f.name not in MACHINE}
    return cls(**values)


@FAST
@given(st.sampled_from([TrainConfig, ClassifyConfig]).flatmap(configs))
def test_config_dict_and_json_round_trip(cfg):
    cfg.check()
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def _flag(name: str, value) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, list):
        return [
            f"{flag}="
            + ",".join(map(repr if value and isinstance(value[0], float) else str, value))
        ]
    return [f"{flag}={value!r}" if isinstance(value, float) else f"{flag}={value}"]


@FAST
@given(configs(TrainConfig))
def test_train_flags_round_trip(cfg):
    """Every setting given as a flag of ``aerialseg train`` comes back as it was."""
    from aerialseg.cli import build_parser
    from aerialseg.cli.common import flag_values

    assume(not (cfg.minutes and cfg.epochs))  # the command refuses both together
    argv = ["train", "--out", "x"]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is not None and f.name not in MACHINE and value != []:
            argv += _flag(f.name, value)
    args = build_parser({"train"}).parse_args(argv)
    got = resolve_config(None, None, flag_values(args, TrainConfig))
    assert got == cfg  # floats too, exactly: a float's repr reads back as the same float
