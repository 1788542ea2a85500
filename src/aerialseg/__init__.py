"""aerialseg: land-cover maps from aerial and satellite photos with a U-Net.

Quick tour::

    import aerialseg
    cfg = aerialseg.TrainConfig(data="path/to/dubai", minutes=10)
    aerialseg.train(cfg, "runs/first")
    seg = aerialseg.load_model("runs/first/best.safetensors")   # None = the bundled model
    labels = seg.segment(rgb)                  # (H, W) class indices for a uint8 RGB array
    samples = aerialseg.load_dataset("path/to/dubai", seg.classes)
    print(aerialseg.evaluate(seg, samples)["mean_iou"])
"""

from .classes import DUBAI, IGNORE_INDEX, ClassTable
from .config import TrainConfig
from .data.segmentation import Sample, find_pairs, load_dataset
from .data.splits import split_images, split_patches_random
from .errors import AerialSegError
from .inference.evaluate import evaluate
from .inference.segmenter import Segmenter, load_model
from .inference.tiling import Tiling
from .io.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from .models import create_model, list_models
from .training.segmentation import train

__version__ = "0.1.0"

__all__ = [
    "DUBAI",
    "IGNORE_INDEX",
    "AerialSegError",
    "ClassTable",
    "Sample",
    "Segmenter",
    "Tiling",
    "TrainConfig",
    "create_model",
    "evaluate",
    "find_pairs",
    "list_models",
    "load_checkpoint",
    "load_dataset",
    "load_model",
    "read_metadata",
    "save_checkpoint",
    "split_images",
    "split_patches_random",
    "train",
]
