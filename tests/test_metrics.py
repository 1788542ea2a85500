import numpy as np
import pytest
import torch

from aerialseg.classes import IGNORE_INDEX
from aerialseg.metrics import SegmentationMetrics, summarize


def test_confusion_and_metrics_against_hand_computation():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 2, IGNORE_INDEX]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 2, 0, 1]]])
    m = SegmentationMetrics(3, land_cover=[0, 1])
    m.update(target, pred)
    # rows truth, cols pred; the ignored pixel is not counted
    assert m.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    r = m.compute()
    assert r["pixel_accuracy"] == pytest.approx(5 / 7)
    # IoU: class0 1/(2+2-1)=1/3, class1 2/(3+2-2)=2/3, class2 2/(2+3-2)=2/3
    assert r["per_class_iou"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert r["mean_iou"] == pytest.approx(5 / 9)
    assert r["mean_iou_land_cover"] == pytest.approx(0.5)
    # with hard predictions the soft Jaccard is acc / (2 - acc)
    assert r["micro_jaccard"] == pytest.approx((5 / 7) / (2 - 5 / 7))


def test_mean_iou_skips_absent_classes_like_keras():
    cm = np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]])
    r = summarize(cm, [0, 1, 2])
    assert np.isnan(r["per_class_iou"][2])
    assert r["mean_iou"] == pytest.approx((3 / 4 + 4 / 5) / 2)


def test_soft_jaccard_uses_probabilities():
    target = torch.tensor([[[0, 1]]])
    probs = torch.tensor([[[[0.8, 0.4]], [[0.2, 0.6]]]])  # (1, C=2, 1, 2)
    m = SegmentationMetrics(2)
    m.update(target, probs)
    inter = 0.8 + 0.6
    assert m.compute()["micro_jaccard"] == pytest.approx(inter / (4 - inter))


def test_agreement_kappa_users_and_producers_accuracy():
    from aerialseg.metrics import agreement

    # reference in rows, map in columns: 80 % agree, chance agreement 50 %
    got = agreement(np.array([[45, 5, 0], [15, 35, 0], [0, 0, 0]]), ["a", "b", "c"])
    assert got["kappa"] == pytest.approx(0.6)
    assert got["users_accuracy"] == {"a": 0.75, "b": 0.875, "c": None}
    assert got["producers_accuracy"] == {"a": 0.9, "b": 0.7, "c": None}
