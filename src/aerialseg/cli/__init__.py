"""The ``aerialseg`` command. Every user mistake becomes one ``aerialseg: error: ...`` line.

Each command lives in the module named in :data:`COMMANDS`; only the module of the command
being run is imported, so ``aerialseg --help`` and ``--version`` start at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import AerialSegError
from ..runtime import passive_thread_waits, reuse_freed_memory

DESCRIPTION = (
    "Land-cover maps from aerial and satellite photos: train a U-Net, score it, segment images "
    "of any size, or frame part of the screen in the desktop app."
)

# command -> (module in this package, one-line help), in the order `aerialseg -h` lists them
COMMANDS = {
    "segment": ("segmentation", "segment images into land-cover maps"),
    "segment-batch": ("batch", "segment many images or rasters on several processes or Ray"),
    "evaluate": ("segmentation", "score a model on whole images"),
    "train": ("segmentation", "train a segmentation model"),
    "finetune": ("finetune", "fine-tune a segmentation model on a few images' (partial) labels"),
    "gui": ("app", "desktop app: frame part of the screen (or open an image), see it segmented"),
    "capture": ("app", "screenshot a screen region, segment it and save the results (no window)"),
    "download": ("resources", "get the Dubai dataset (Kaggle, or a downloaded zip)"),
    "models": ("resources", "list the architectures the registry knows"),
    "classify": (
        "classify",
        "image classifiers (the ISLR2 CNN) on CIFAR-100, image folders or aerial patches",
    ),
    "baseline": ("baseline", "classic per-pixel baselines (KMeans, SVM, random forest)"),
    "export": ("export", "write a segmentation model as ONNX, TorchScript or float16"),
    "calibrate-int8": ("export", "measure a model's int8 ranges on images (--precision int8)"),
    "qgis": ("qgis", "the QGIS plugin: install it into a QGIS profile, or zip it"),
}


class Parser(argparse.ArgumentParser):
    """A command-line mistake is one line, like every other user mistake (the usage of
    ``train`` alone is 20 lines); ``-h`` shows it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The parser, with every argument of ``commands`` (default: all of them); the others get
    only their name and help line, which is all that ``aerialseg -h`` shows."""
    p = Parser(prog="aerialseg", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help) in COMMANDS.items():
        if commands is None or name in commands:
            parsers = importlib.import_module(f".{module}", __name__).PARSERS
            parsers[name](sub, help)
        else:
            sub.add_parser(name, help=help)
    return p


def main(argv: list[str] | None = None) -> int:
    passive_thread_waits()  # before any command imports torch (see runtime)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser({command} if command in COMMANDS else ())
    args = parser.parse_args(argv)
    args.argv = argv  # as typed: `train --nproc` hands it on to the processes it starts
    reuse_freed_memory()  # a third of a forward pass went to fresh pages (see runtime)
    try:
        return args.func(args)
    except AerialSegError as e:  # one line, even if a message from elsewhere had several
        message = " ".join(line for line in str(e).splitlines() if line.strip())
        print(f"aerialseg: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aerialseg: interrupted", file=sys.stderr)
        return 130
