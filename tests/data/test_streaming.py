"""``train --stream``: crops read from the files as needed give exactly the batches of the
in-memory sampler (with DataLoader workers too), GeoTIFFs are read in windows, never whole,
and a streamed run trains exactly as an in-memory one."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from aerialseg.classes import DUBAI
from aerialseg.config import TrainConfig
from aerialseg.data import streaming
from aerialseg.data.segmentation import Batches, load_dataset, mean_std
from aerialseg.errors import AerialSegError

SAMPLER = {"jitter": 0.1, "zoom": 1.5, "color": 1.0}  # every draw the sampler makes


def batches(samples, **kw):
    return Batches(samples, 32, 4, patches_per_epoch=14, **SAMPLER, **kw)


def assert_same(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b) == 4
    for (x1, y1), (x2, y2) in zip(a, b):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_streamed_batches_equal_in_memory(tiny_dataset):
    memory = load_dataset(tiny_dataset, DUBAI)
    disk = streaming.stream_dataset(tiny_dataset, DUBAI)
    assert [s.shape for s in disk] == [s.shape for s in memory]
    assert mean_std(disk) == mean_std(memory)
    expected = list(batches(memory).epoch(np.random.default_rng(3)))
    assert_same(batches(disk).epoch(np.random.default_rng(3)), expected)
    assert_same(batches(disk).epoch(np.random.default_rng(3), workers=2), expected)
    assert_same(batches(memory).epoch(np.random.default_rng(3), workers=1), expected)


@pytest.fixture
def geotiff_dataset(tmp_path):
    """images/ as 8-bit RGB GeoTIFFs, masks/ as one-band GeoTIFFs of class indices."""
    pytest.importorskip("rasterio", reason="the geo extra is not installed")
    from ..geo_helpers import scene, write_raster

    root = tmp_path / "geo"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        photo, labels = scene(150 + 10 * i, 170, seed=i)
        write_raster(root / "images" / f"t{i}.tif", photo)
        write_raster(root / "masks" / f"t{i}.tif", labels[None])
    return root


def test_geotiffs_are_read_in_windows(geotiff_dataset, monkeypatch):
    memory = load_dataset(geotiff_dataset, DUBAI)
    reads = []
    real_read = streaming.rasters.RasterSource.read

    def read(self, row0, col0, rows, cols):
        reads.append((rows, cols))
        return real_read(self, row0, col0, rows, cols)

    monkeypatch.setattr(streaming.rasters.RasterSource, "read", read)
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 40)
    monkeypatch.setattr(streaming, "load_sample", lambda *a: pytest.fail("decoded whole"))
    disk = streaming.stream_dataset(geotiff_dataset, DUBAI)
    assert all(s.windowed for s in disk)
    assert np.allclose(mean_std(disk), mean_std(memory), rtol=1e-12, atol=0)
    assert [s.stats().labels.tolist() for s in disk] == [s.stats().labels.tolist() for s in memory]
    assert max(rows for rows, _ in reads) == 40  # the statistics: blocks of rows
    reads.clear()
    assert_same(
        batches(disk).epoch(np.random.default_rng(5)),
        batches(memory).epoch(np.random.default_rng(5)),
    )
    assert reads and max(max(r) for r in reads) <= 48  # crops: at most 32 x zoom 1.5


def test_streamed_training_equals_in_memory(geotiff_dataset, tmp_path, monkeypatch):
    """The same run in memory, streamed with 2 DataLoader workers, and streamed with 1 worker
    but killed in epoch 2 and resumed: the same history (crops, steps, metrics)."""
    from aerialseg.training.segmentation import SegmentationTask, train

    base = dict(
        data=str(geotiff_dataset), arch="unet", base_filters=4, patch_size=32, batch_size=4,
        patches_per_epoch=8, epochs=2, precision="fp32", threads=1, examples=0, **SAMPLER,
    )  # fmt: skip
    quiet = {"progress": False, "log": lambda s: None}
    train(TrainConfig(**base), tmp_path / "memory", **quiet)
    train(TrainConfig(**base, stream=True, workers=2), tmp_path / "stream", **quiet)

    steps, real = [], SegmentationTask.training_step

    def step(self, batch, metrics):  # Ctrl-C at the first step of epoch 2
        if len(steps) == 2:
            raise KeyboardInterrupt
        steps.append(1)
        return real(self, batch, metrics)

    cfg = TrainConfig(**base, stream=True, workers=1)
    monkeypatch.setattr(SegmentationTask, "training_step", step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", **quiet)
    monkeypatch.undo()
    train(cfg, tmp_path / "resumed", resume=True, **quiet)
    histories = []
    for name in ("memory", "stream", "resumed"):
        with open(tmp_path / name / "history.csv") as f:
            rows = list(csv.DictReader(f))
        histories.append(
            [{k: v for k, v in r.items() if k not in ("seconds", "minutes")} for r in rows]
        )
    assert len(histories[0]) == 2
    assert histories[0] == histories[1] == histories[2]


def test_stream_needs_random_crops(tiny_dataset, tmp_path):
    from aerialseg.training.segmentation import train

    cfg = TrainConfig(data=str(tiny_dataset), stream=True, split="random-patch", epochs=1)
    with pytest.raises(AerialSegError, match="--stream reads random crops"):
        train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
