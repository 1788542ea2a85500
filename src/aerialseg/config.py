"""Run configurations: one dataclass per task, overridable from a preset, a file and flags.

Precedence: defaults < ``--preset`` < ``--config FILE`` < command-line flags. The resolved
config is saved into the run folder and into every checkpoint. Each field carries its help
text and allowed values (:mod:`.config_fields`), from which the command line generates its
flags and checks.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .config_fields import Config, opt
from .errors import AerialSegError
from .io.files import read_mapping
from .losses import LOSSES
from .models.registry import list_models
from .runtime import DEVICE_HELP, PRECISION_HELP, PRECISIONS

DATA_ENV = "AERIALSEG_DATA"  # where commands look for the dataset when --data is not given


def data_root(arg: str | None = None, required: bool = True) -> str | None:
    """``--data`` if given, else $AERIALSEG_DATA; one clear error if neither is set (None
    when not ``required``: the caller has something else to work on)."""
    data = arg or os.environ.get(DATA_ENV)
    if not data and required:
        raise AerialSegError(f"give --data DIR (or set {DATA_ENV})")
    return data


@dataclass
class TrainConfig(Config):
    data: str = opt("", "dataset root (Kaggle 'Tile N/' layout or images/ + masks/)")
    classes: str = opt("", "class-table file (JSON/YAML); empty = the Dubai table")
    # labels drawn in a GIS instead of masks/ (flags: cli.common.add_vector_labels)
    labels: str = opt("", "vector file of labelled shapes for the images of --data")
    class_field: str = opt("", "the --labels attribute holding each shape's class")
    layer: str = opt("", "the --labels layer (where the file has several)")
    line_width: float | None = opt(
        None, "width of line features' band, metres", low=0, low_open=True
    )
    # model
    arch: str = opt("unet-effl0-s4", "architecture (see `aerialseg models`)", choices=list_models)
    base_filters: int | None = opt(None, "width of the first level (default: the arch's)", low=1)
    depth: int | None = opt(None, "number of 2x2 poolings (default: the arch's)", low=1)
    batch_norm: bool | None = opt(None, "batch norm after each conv (default: the arch's)")
    dropout: float | None = opt(None, "dropout rate (default: the arch's)", low=0, high=0.95)
    context: str | None = opt(
        None,
        "context module on the encoder's output (aspp: light atrous pyramid; unet-effl*)",
        choices=("aspp",),
    )
    encoder_bn: bool | None = opt(
        None,
        "unet-effl*: batch norms in the encoder (false: folded into its convs and frozen at "
        "their ImageNet statistics: trains faster, held-out accuracy lower on one of two "
        "folds) (default: the arch's)",
    )
    pretrained: bool = opt(
        True, "start the encoder from ImageNet weights where the arch has them (unet-effl*)"
    )
    encoder_lr: float = opt(
        0.1, "learning rate of a pretrained encoder, as a share of --lr", low=0, high=1
    )
    normalization: str = opt(
        "meanstd",
        "meanstd: training-set statistics stored in the model; minmax: per patch (the seed's)",
        choices=("meanstd", "minmax"),
    )
    # data
    split: str = opt(
        "image",
        "image: whole images held out (leakage-free); random-patch: the seed's 80/20 of patches",
        choices=("image", "random-patch"),
    )
    val_fraction: float = opt(
        0.2, "share of each tile's images held out", low=0, high=1, low_open=True
    )
    val_tiles: list[str] = opt([], "hold out these whole tiles instead, e.g. 'Tile 7'")
    val_images: list[str] = opt([], "hold out these image ids instead ('Tile 1/image_part_001')")
    sampling: str = opt(
        "random-crop",
        "random-crop: area-weighted random crops; patches: the fixed grid patches",
        choices=("random-crop", "patches"),
    )
    patch_size: int = opt(256, "training patch side in pixels (a multiple of 16)", low=32)
    gsd: float | None = opt(
        None,
        "metres per pixel of the training imagery, recorded in the model so that `segment "
        "--input-gsd` can resample other imagery to it (the Dubai data: about 1, estimated)",
        low=0,
        low_open=True,
    )
    patches_per_epoch: int | None = opt(None, "default: training area / patch area", low=1)
    stream: bool = opt(
        False,
        "read training crops from the files as needed (GeoTIFFs in windows, JPEG/PNG decoded "
        "once into a bounded cache) instead of decoding every image into memory first",
    )
    workers: int = opt(0, "DataLoader processes that read and augment batches (0: none)", low=0)
    augment: bool = opt(True, "random flips/rotations (the 8 symmetries of the square)")
    jitter: float = opt(0.2, "brightness/contrast jitter, +- this share", low=0, high=1)
    zoom: float = opt(
        2.0, "scale augmentation: patches seen at 1/ZOOM..ZOOM times their size (1: none)", low=1
    )
    color: float = opt(
        1.0,
        "colour augmentation strength: white balance, saturation, gamma, blur, JPEG (0: none)",
        low=0,
        high=3,
    )
    classmix: float = opt(
        0.0,
        "ClassMix: share of patches that get half the classes of another patch of their batch "
        "pasted over them (0: none)",
        low=0,
        high=1,
    )
    # optimisation
    epochs: int = opt(30, "epochs to train (ignored with --minutes)", low=0)
    minutes: float | None = opt(
        None, "train for this long instead; the schedule follows the clock", low=0, low_open=True
    )
    batch_size: int = opt(16, "patches per step", low=1)
    lr: float = opt(2e-3, "Adam learning rate (peak of the schedule)", low=0, low_open=True)
    weight_decay: float = opt(0.0, "Adam weight decay", low=0)
    schedule: str = opt(
        "cosine", "cosine: warm-up then cosine decay; constant", choices=("cosine", "constant")
    )
    loss: str = opt("dice+focal", "training loss", choices=LOSSES)
    label_smoothing: float = opt(
        0.0, "label smoothing of the cross-entropy term (a loss with ce)", low=0, high=0.5
    )
    class_weights: list[float] | None = opt(None, "one weight per class (Dice and CE terms)")
    balanced_weights: bool = opt(False, "inverse-frequency class weights from training labels")
    ema: float = opt(
        0.0,
        "keep an exponential moving average of the weights with this decay (e.g. 0.999; "
        "0: off); validation and the saved models use the average",
        low=0,
        high=0.9999,
    )
    precision: str = opt("auto", PRECISION_HELP, choices=PRECISIONS)
    device: str = opt("auto", DEVICE_HELP)
    threads: int | None = opt(None, "torch threads per process (default: all cores)", low=1)
    seed: int = opt(0, "seed of the split, sampling and initialisation", low=0)
    examples: int = opt(3, "validation images in examples.png", low=0)


@dataclass
class ClassifyConfig(Config):
    data: str = opt("", "cifar-100-python/, an image folder, or a segmentation dataset")
    dataset: str = opt(
        "auto",
        "what --data holds (auto: detect)",
        choices=("auto", "cifar100", "imagefolder", "landcover"),
    )
    arch: str = opt(
        "cnn-islr",
        "architecture (cnn-islr: the ISLR2 lab's; cnn-seed: the paper's)",
        choices=lambda: list_models("classification"),
    )
    base_filters: int | None = opt(None, "filters of the first block (default: 32)", low=1)
    dropout: float | None = opt(None, "dropout before the dense layer", low=0, high=0.95)
    dense: int | None = opt(None, "units of the dense layer (default: 512)", low=1)
    size: int | None = opt(None, "input side in pixels (default 32; CIFAR is 32)", low=8)
    label: str = opt(
        "fine", "CIFAR-100 label set: fine (100) or coarse (20)", choices=("fine", "coarse")
    )
    min_share: float = opt(
        0.5, "landcover: share the majority class must cover", low=0, high=1, low_open=True
    )
    stride: int | None = opt(None, "landcover: patch step (default: the size)", low=1)
    val_fraction: float = opt(0.2, "share of images held out", low=0, high=1, low_open=True)
    seed: int = opt(0, "seed of the split, shuffling and initialisation", low=0)
    limit: int | None = opt(None, "use at most this many training images", low=1)
    normalization: str = opt(
        "scale",
        "scale: x / 255 (the lab's); meanstd: training-set statistics",
        choices=("scale", "meanstd"),
    )
    augment: bool = opt(False, "random flips (and rotations for aerial patches)")
    epochs: int = opt(30, "epochs to train (ignored with --minutes)", low=0)
    minutes: float | None = opt(None, "train for this long instead", low=0, low_open=True)
    batch_size: int = opt(128, "images per step", low=1)
    lr: float = opt(1e-3, "RMSprop learning rate", low=0, low_open=True)
    device: str = opt("auto", DEVICE_HELP)
    threads: int | None = opt(None, "torch threads (default: all cores)", low=1)


@dataclass
class FinetuneConfig(Config):
    """``aerialseg finetune``: a short run on a user's sparse labels, counted in steps. Two
    recipes, picked by measurement (benchmarks/new_place.py; README, *Teach it a new place*):
    a new place, where the parent is wrong and its confident pixels are the errors, and a
    correction at home, where the parent is mostly right and must not forget. ``auto`` tells
    them apart by the images' distance from the parent's training imagery (its feature
    reference, as segment's warning measures it). A setting left unset takes its recipe's
    value (:data:`RECIPES`); one given wins over the recipe."""

    recipe: str = opt(
        "auto",
        "new-place: learn imagery unlike the model's training data (strokes trusted, encoder "
        "kept, self-training); correction: gentle fixes at home (small steps, the parent's "
        "confident pixels kept); auto: new-place where the images look unfamiliar to the model",
        choices=("auto", "new-place", "correction"),
    )
    minutes: float = opt(
        10.0,
        "a guard: stop after this long even if steps remain, and say so (the run is counted "
        "in steps, so that the result does not depend on how busy the CPU is)",
        low=0,
        low_open=True,
    )
    steps: int | None = opt(None, "optimisation steps (default: the recipe's)", low=1)
    lr: float | None = opt(
        None,
        "AdamW learning rate, peak of the schedule (default: the recipe's)",
        low=0,
        low_open=True,
    )
    schedule: str = opt(
        "cosine", "cosine: warm-up then cosine decay; constant", choices=("cosine", "constant")
    )
    batch_size: int = opt(4, "crops of the labelled images per step", low=1)
    patch_size: int = opt(256, "crop side in pixels (a multiple of 16)", low=32)
    balance: bool | None = opt(
        None,
        "weigh the labelled classes equally (corrections are mostly of the classes the model "
        "misses; default: the recipe's)",
    )
    adapt_bn: float = opt(
        0.0,
        "move batch-norm statistics this far towards those of the user's images (0: the "
        "parent's; 1: the images' own, measured on random crops of them)",
        low=0,
        high=1,
    )
    freeze: str | None = opt(
        None,
        "parameters kept as they are: none; encoder (a pretrained encoder's, e.g. unet-effl0); "
        "all-but-head (only the last 1x1 convolution learns) (default: the recipe's)",
        choices=("none", "encoder", "all-but-head"),
    )
    distill: float | None = opt(
        None,
        "weight of self-distillation: unlabelled pixels the old model was confident about "
        "keep its label (0: off; default: the recipe's)",
        low=0,
    )
    distill_trust: float | None = opt(
        None,
        "--distill keeps only the classes the model is right about on at least this share of "
        "the stroked pixels where it predicts them (0: every class; default: the recipe's)",
        low=0,
        high=1,
    )
    confidence: float = opt(
        0.9, "what 'confident' means for --distill and --self-train", low=0, high=1
    )
    self_train: float | None = opt(
        None,
        "weight of self-training: from --self-train-at on, the unlabelled pixels the model "
        "being fine-tuned is confident about keep its label, all over the images (0: off; "
        "default: the recipe's)",
        low=0,
    )
    self_train_at: float = opt(
        0.5, "when self-training starts, as a share of the steps", low=0, high=0.95
    )
    replay: float = opt(1.0, "weight of the --data-replay crops' loss", low=0)
    replay_batch: int = opt(2, "--data-replay crops per step", low=1)
    replay_images: int = opt(12, "--data-replay images loaded (a random choice)", low=1)
    precision: str = opt("auto", PRECISION_HELP, choices=PRECISIONS)
    device: str = opt("auto", DEVICE_HELP)
    threads: int | None = opt(None, "torch threads (default: all cores)", low=1)
    seed: int = opt(0, "seed of the crops and the replay choice", low=0)

    def with_recipe(self, name: str) -> FinetuneConfig:
        """This config with the unset settings taken from recipe ``name``."""
        unset = {k: v for k, v in RECIPES[name].items() if getattr(self, k) is None}
        return dataclasses.replace(self, recipe=name, **unset)


# The fine-tune's recipes (FinetuneConfig), measured with benchmarks/new_place.py on the
# OpenEarthMap scenes (new place) and the bundled model's held-out Dubai images (at home).
RECIPES: dict[str, dict] = {
    # strokes trusted, no distillation (in a new place the parent's confident pixels are its
    # errors), the pretrained encoder kept (its features carry over; half the backward pass)
    # and, halfway, self-training on the student's own confident pixels everywhere
    # and the classes not balanced (new-place strokes cover every class: balancing them cost
    # 0.02 of the accuracy); measured in docs/experiments.md, "Teaching a new place"
    "new-place": dict(
        steps=200,
        lr=2e-3,
        freeze="encoder",
        distill=1.0,
        distill_trust=0.5,
        self_train=1.0,
        balance=False,
    ),
    # issue 12's protection against forgetting (a tiny rate, the parent's confident pixels
    # kept), with the encoder kept too: at home the whole network lost 0.007 accuracy on the
    # other held-out images, this 0.000
    "correction": dict(
        steps=144,
        lr=1e-5,
        freeze="encoder",
        distill=1.0,
        distill_trust=0.0,
        self_train=0.0,
        balance=True,
    ),
}


PRESETS: dict[str, dict] = {
    # The seed paper's recipe: its exact U-Net, fixed grid patches with per-patch min-max
    # scaling, a random 80/20 patch split, no augmentation, Adam at Keras' default 1e-3.
    "seed": dict(
        arch="unet-seed",
        normalization="minmax",
        split="random-patch",
        sampling="patches",
        augment=False,
        jitter=0.0,
        zoom=1.0,
        color=0.0,
        lr=1e-3,
        schedule="constant",
        batch_size=16,
        epochs=100,
    ),
}


def resolve_config(
    preset: str | None,
    config_file: str | None,
    flags: dict,
    base: dict | None = None,
    cls: type[Config] = TrainConfig,
):
    """``cls`` from ``base`` (a resumed run's config) < preset < config file < set flags."""
    d: dict = {k: v for k, v in (base or {}).items() if k not in cls.PER_MACHINE}
    if preset:
        if preset not in PRESETS:
            raise AerialSegError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        d.update(PRESETS[preset])
    if config_file:
        d.update(read_mapping(config_file))
        try:  # a mistake in the file is named with the file
            cls.from_dict({k: v for k, v in d.items() if k not in flags or flags[k] is None})
        except AerialSegError as e:
            raise AerialSegError(f"{config_file}: {e}") from None
    d.update({k: v for k, v in flags.items() if v is not None})
    return cls.from_dict(d)
