"""aerialseg: land-cover maps from aerial and satellite photos with a U-Net.

Quick tour::

    import aerialseg
    labels = aerialseg.segment("ortho.tif")    # a path, a PIL image or a numpy array
    labels, probs = aerialseg.segment(image, probabilities=True)   # (H, W), (H, W, C)
    cfg = aerialseg.TrainConfig(data="path/to/dubai", minutes=10)
    aerialseg.train(cfg, "runs/first")
    seg = aerialseg.load_segmenter("runs/first/best.safetensors")   # None: the bundled model
    labels = seg.segment(rgb)                  # (H, W) class indices for a uint8 RGB array
    samples = aerialseg.load_dataset("path/to/dubai", seg.classes)
    print(aerialseg.evaluate(seg, samples)["mean_iou"])
    aerialseg.segment_file(seg, "ortho.tif", "out", aerialseg.SegmentOptions(vector=True))

Importing the package changes nothing in the process (no matplotlib backend, no Pillow limit,
no umask) and imports nothing heavy: each name below is imported when first used, so the
command line starts fast and a user mistake is reported at once.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "AerialSegError": "errors",
    "ClassTable": "classes",
    "DUBAI": "classes",
    "IGNORE_INDEX": "classes",
    "TrainConfig": "config",
    "ClassifyConfig": "config",
    "Sample": "data.segmentation",
    "find_pairs": "data.segmentation",
    "load_dataset": "data.segmentation",
    "split_images": "data.splits",
    "split_patches_random": "data.splits",
    "create_model": "models",
    "list_models": "models",
    "load_checkpoint": "models.checkpoint",
    "read_metadata": "models.checkpoint",
    "save_checkpoint": "models.checkpoint",
    "Segmenter": "inference.segmenter",
    "load_segmenter": "inference.segmenter",
    "SegmentOptions": "jobs.segment",
    "SegmentResult": "jobs.segment",
    "segment_file": "jobs.segment",
    "Tiling": "inference.tiling",
    "evaluate": "inference.evaluate",
    "segment": "api",
    "train": "training.segmentation",
}
# earlier names that keep working, left out of __all__ and the docs
_OLD_NAMES = {"load_model": "inference.segmenter"}


def __getattr__(name: str):
    module = _API.get(name) or _OLD_NAMES.get(name)
    if module:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = sorted(_API)
