"""Classifier datasets: CIFAR pickles, image folders, land-cover patches."""

import pickle

import numpy as np
import pytest
from PIL import Image

from aerialseg.classes import DUBAI, IGNORE_INDEX
from aerialseg.data.cifar import read_cifar100
from aerialseg.data.classification import (
    fit_square,
    folder_parts,
    landcover_patches,
    load_data,
    patch_labels,
    read_image_folder,
)
from aerialseg.data.segmentation import Sample
from aerialseg.errors import AerialSegError

from ..helpers import write_cifar


def test_cifar_loader_reads_the_pickle_format(tmp_path):
    root = write_cifar(tmp_path)
    with open(root / "cifar-100-python" / "train", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    s = read_cifar100(root, "train")
    assert s.images.shape == (40, 32, 32, 3) and s.images.dtype == np.uint8
    # channel planes become the last axis: pixel (y, x) of image 0 is data[0, [p, 1024 + p, ..]]
    p = 5 * 32 + 7
    assert s.images[0, 5, 7].tolist() == raw[b"data"][0, [p, 1024 + p, 2048 + p]].tolist()
    assert s.labels.tolist() == raw[b"fine_labels"]
    assert s.classes.names == ("fine0", "fine1", "fine2", "fine3")
    assert s.ids[0] == "train/img_train_0.png"
    coarse = read_cifar100(root / "cifar-100-python", "test", "coarse")
    assert len(coarse) == 20 and coarse.classes.names == ("c0", "c1")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_cifar_loader_refuses_code_in_pickles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_cifar(tmp_path)
    (root / "cifar-100-python" / "train").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(AerialSegError, match="refusing to load posix.system|refusing to load"):
        read_cifar100(root)
    assert not (tmp_path / "pwned.txt").exists()
    (root / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(AerialSegError, match="not a CIFAR pickle"):
        read_cifar100(root)


def _write_folder(root, sizes):
    for cls, color in (("desert", (200, 180, 120)), ("sea", (20, 60, 180))):
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            Image.new("RGB", (w, h), color).save(root / cls / f"{i}.png")


def test_image_folder_loader(tmp_path):
    _write_folder(tmp_path / "flat", [(40, 20), (16, 16), (33, 50)])
    s = read_image_folder(tmp_path / "flat", 16)
    assert s.images.shape == (6, 16, 16, 3)
    assert s.classes.names == ("desert", "sea") and s.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert s.images[4, 8, 8].tolist() == [20, 60, 180] and s.ids[0] == "desert/0.png"
    _write_folder(tmp_path / "split" / "train", [(16, 16)] * 3)
    _write_folder(tmp_path / "split" / "test", [(20, 20)])
    train_dir, test_dir = folder_parts(tmp_path / "split")
    assert (train_dir.name, test_dir.name) == ("train", "test")
    (tmp_path / "split" / "test" / "cloud").mkdir()
    (tmp_path / "split" / "test" / "cloud" / "a.png").write_bytes(b"")
    with pytest.raises(AerialSegError, match="not classes of this model"):
        read_image_folder(test_dir, 16, ["desert", "sea"])
    with pytest.raises(AerialSegError, match="no images in class sub-folders"):
        read_image_folder(tmp_path / "split" / "test" / "cloud", 16)


def test_fit_square_centre_crops():
    a = np.zeros((10, 30, 3), np.uint8)
    a[:, 10:20] = 255
    assert fit_square(a, 10).min() == 255


def test_patch_labels_majority_and_share():
    lab = np.empty((8, 8), dtype=np.uint8)
    lab[:4, :4] = 2  # pure Road
    lab[:4, 4:] = 1
    lab[:4, 4:][:2, :] = 3  # 8 Vegetation, 8 Land: a tie, share 0.5
    lab[:4, 4:][2, :2] = 3  # now 10 Vegetation: share 0.625
    lab[4:, :4] = IGNORE_INDEX
    lab[4:, :4][0, :] = 4  # 4 Water, 12 ignored: share 0.25
    lab[4:, 4:] = 5  # Unlabeled (background)
    best, keep = patch_labels(lab, 4, 4, len(DUBAI), 0.6)
    assert best.tolist() == [[2, 3], [4, 5]]
    assert keep.tolist() == [[True, True], [False, True]]
    s = Sample("t/a", "t", np.zeros((8, 8, 3), np.uint8), lab)
    p = landcover_patches([s], DUBAI, 4, 0.6)
    # Unlabeled is not land cover: its patch is left out, and labels index land-cover classes
    assert p.classes.names == ("Building", "Land", "Road", "Vegetation", "Water")
    assert p.labels.tolist() == [2, 3] and p.ids == ["t/a@0,0", "t/a@0,4"]
    half = landcover_patches([s], DUBAI, 4, 0.25, stride=2)
    assert len(half) > len(landcover_patches([s], DUBAI, 4, 0.25))


def test_landcover_split_is_by_image(tiny_dataset):
    ds = {
        "kind": "landcover",
        "root": str(tiny_dataset),
        "size": 16,
        "min_share": 0.5,
        "stride": 16,
        "val_fraction": 0.34,
        "seed": 0,
        "mask_classes": DUBAI.to_dict(),
    }
    parts = load_data(ds, ("train", "val"))
    images = [{i.split("@")[0] for i in parts[k].ids} for k in ("train", "val")]
    assert images[0] and images[1] and not images[0] & images[1]
    assert images[1] <= set(ds["val_images"])  # remembered, for evaluate to find them again
    again = load_data(ds, ("val",))["val"]
    assert again.ids == parts["val"].ids
    assert parts["train"].images.shape[1:] == (16, 16, 3)
