import json

import numpy as np

from aerialseg.inference.confidence import CONFIDENCE_FLOOR, unusual
from aerialseg.inference.segmenter import load_model
from aerialseg.io.outputs import output_paths
from aerialseg.jobs.image import segment_image_to_files

from ..helpers import make_scene


def test_a_uniform_image_is_flagged_whatever_the_model_says():
    black = np.zeros((300, 400, 3), np.uint8)
    assert "uniform" in unusual(black, confidence=0.99)
    photo, _ = make_scene(300, 400, seed=1)
    assert unusual(photo, confidence=0.99) is None


def test_low_confidence_is_flagged_against_the_floor_or_the_models_own():
    photo, _ = make_scene(120, 160, seed=2)
    low = unusual(photo, confidence=CONFIDENCE_FLOOR - 0.1)
    assert low and "unsure" in low and f"{CONFIDENCE_FLOOR - 0.1:.2f}" in low
    assert unusual(photo, confidence=CONFIDENCE_FLOOR + 0.01) is None
    assert unusual(photo, 0.9, {"confidence_floor": 0.95}) is not None


def test_segment_writes_the_confidence_and_the_warning(tmp_path, tiny_model):
    seg = load_model(tiny_model)
    paths = output_paths(tmp_path, "black")
    info = segment_image_to_files(seg, np.zeros((64, 80, 3), np.uint8), paths, "black.png")
    saved = json.loads(paths["stats_json"].read_text())
    assert 1 / seg.model.num_classes <= saved["mean_confidence"] <= 1
    assert "uniform" in saved["warning"] and saved["warning"] == info["warning"]


def test_segment_confidence_is_the_mean_top_probability(tiny_model):
    seg = load_model(tiny_model)
    photo, _ = make_scene(70, 90, seed=3)
    labels, confidence = seg.segment_confidence(photo)
    probs = seg.predict_proba(photo)
    assert np.array_equal(labels, probs.argmax(-1))
    assert abs(confidence - probs.max(-1).mean()) < 1e-6
