"""The training configuration: one dataclass, overridable from a preset, a file and flags.

Precedence: defaults < ``--preset`` < ``--config FILE`` < command-line flags. The resolved
config is saved into the run folder and into every checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AerialSegError

DATA_ENV = "AERIALSEG_DATA"  # where commands look for the dataset when --data is not given


def data_root(arg: str | None) -> str:
    """``--data`` if given, else $AERIALSEG_DATA; one clear error if neither is set."""
    data = arg or os.environ.get(DATA_ENV)
    if not data:
        raise AerialSegError(f"give --data DIR (or set {DATA_ENV})")
    return data


@dataclass
class TrainConfig:
    data: str = ""  # dataset root (Kaggle 'Tile N/' layout or images/ + masks/)
    classes: str = ""  # class-table file (JSON/YAML); empty = the Dubai table
    # model
    model: str = "unet"  # registry name, see `aerialseg models`
    base_filters: int | None = None  # width of the first level (None = the model's default)
    depth: int | None = None  # number of 2x2 poolings
    batch_norm: bool | None = None
    dropout: float | None = None
    normalization: str = "meanstd"  # meanstd (training-set statistics) | minmax (per patch)
    # data
    split: str = "image"  # image (leakage-free) | random-patch (the seed's 80/20 of patches)
    val_fraction: float = 0.2
    val_tiles: list[str] = field(default_factory=list)  # hold out these groups (e.g. "Tile 7")
    val_images: list[str] = field(default_factory=list)  # hold out these ids ("Tile 1/image_..")
    sampling: str = "random-crop"  # random-crop | patches (fixed grid patches)
    patch_size: int = 256
    patches_per_epoch: int | None = None  # None = training area / patch area
    augment: bool = True  # the 8 flips/rotations
    jitter: float = 0.1  # brightness/contrast jitter
    # optimisation
    epochs: int = 30
    minutes: float | None = None  # stop after this much training time (the schedule follows it)
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    loss: str = "dice+focal"
    class_weights: list[float] | None = None  # per class, or empty for none
    balanced_weights: bool = False  # inverse-frequency class weights from the training labels
    precision: str = "auto"  # auto | bf16 | fp32
    threads: int | None = None  # torch threads (None = all cores)
    seed: int = 0
    examples: int = 3  # validation images in the example-predictions figure

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise AerialSegError(f"unknown config keys: {', '.join(unknown)}")
        return dataclasses.replace(cls(), **d)


@dataclass
class ClassifyConfig:
    data: str = ""
    dataset: str = "auto"  # auto | cifar100 | imagefolder | landcover
    model: str = "cnn-islr"
    base_filters: int | None = None
    dropout: float | None = None
    dense: int | None = None
    size: int | None = None  # input side (CIFAR: 32; else default 32)
    label: str = "fine"  # CIFAR-100 fine (100) or coarse (20) labels
    min_share: float = 0.5  # landcover: share the majority class must cover
    stride: int | None = None  # landcover: patch step (default = size, no overlap)
    val_fraction: float = 0.2
    seed: int = 0
    limit: int | None = None  # at most this many training images (quick runs)
    normalization: str = "scale"  # scale (x / 255, the lab's) | meanstd (training statistics)
    augment: bool = False  # flips (+ rotations for aerial patches)
    epochs: int = 30
    minutes: float | None = None
    batch_size: int = 128
    lr: float = 1e-3
    threads: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict] = {
    # The seed paper's recipe: its exact U-Net, fixed grid patches with per-patch min-max
    # scaling, a random 80/20 patch split, no augmentation, Adam at Keras' default 1e-3.
    "seed": dict(
        model="unet-seed",
        normalization="minmax",
        split="random-patch",
        sampling="patches",
        augment=False,
        jitter=0.0,
        lr=1e-3,
        schedule="constant",
        batch_size=16,
        epochs=100,
    ),
}


def read_mapping(path: str | Path, what: str = "config") -> dict:
    """A JSON or YAML file (by suffix) that must hold a mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise AerialSegError(f"{path}: cannot read {what} ({e.strerror})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise AerialSegError(f"{path}: cannot parse {what}: {e}") from None
    if not isinstance(d, dict):
        raise AerialSegError(f"{path}: {what} must be a mapping of keys to values")
    return d


def _parser_for(tp) -> tuple[typing.Callable | None, dict]:
    """argparse settings for a field type: str, int, float, bool, list[...], or X | None."""
    if isinstance(tp, types.UnionType):  # X | None: parse as X
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if tp is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        return (lambda s: [item(v.strip()) for v in s.split(",") if v.strip()]), {
            "metavar": "A,B,..."
        }
    return tp, {}


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per config field; unset flags stay ``None`` so they override nothing."""
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("training config (also settable in --config FILE)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        conv, extra = _parser_for(hints[f.name])
        kw = {"type": conv} if conv else {}
        group.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, default=None, **kw, **extra
        )


def resolve_config(
    preset: str | None, config_file: str | None, flags: dict, base: dict | None = None
) -> TrainConfig:
    d: dict = dict(base or {})
    if preset:
        if preset not in PRESETS:
            raise AerialSegError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        d.update(PRESETS[preset])
    if config_file:
        d.update(read_mapping(config_file))
    d.update({k: v for k, v in flags.items() if v is not None})
    return TrainConfig.from_dict(d)
