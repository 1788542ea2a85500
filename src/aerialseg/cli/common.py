"""The conventions every command follows, in one place.

- ``--data DIR`` falls back to $AERIALSEG_DATA; ``--precision``, ``--device``, ``-q/--quiet``
  mean the same everywhere.
- A checkpoint file is always ``--model PATH`` (alias ``--checkpoint``); an architecture name
  is always ``--arch``. Old spellings keep working with a one-line deprecation note.
- Run settings are flags generated from the task's config dataclass, with the field's help,
  default and allowed values.
- A user mistake raises :class:`AerialSegError`; ``main`` prints it as one line and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..config import DATA_ENV
from ..config_fields import field_choices
from ..errors import AerialSegError
from ..io.files import read_mapping
from ..runtime import DEVICE_HELP, PRECISION_HELP, PRECISIONS, check_device


def add_data(parser: argparse.ArgumentParser, what: str = "dataset root") -> None:
    parser.add_argument("--data", metavar="DIR", help=f"{what} (default: ${DATA_ENV})")


def add_precision(parser: argparse.ArgumentParser, int8: bool = False) -> None:
    """``--precision``; ``int8`` where the command only runs a model (not for training)."""
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS + ("int8",) * int8,
        help=f"{PRECISION_HELP}"
        + ("; int8: onnxruntime on the CPU, with the model's stored int8 ranges" * int8)
        + " (default: auto)",
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the model runs; its spelling is checked here, whether this machine
    has it once the model loads."""

    def device(text: str) -> str:
        try:
            return check_device(text)
        except AerialSegError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parser.add_argument(
        "--device", type=device, default="auto", help=f"{DEVICE_HELP} (default: auto)"
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_model(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--model PATH``: the checkpoint to use (``--checkpoint`` is the same flag); where it
    is optional, the bundled model."""
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        metavar="PATH",
        required=required,
        help="checkpoint file (.safetensors)"
        + ("" if required else "; default: the bundled model"),
    )


def add_classes(parser: argparse.ArgumentParser, more: str = "") -> None:
    """``--classes FILE``: the same flag, with one meaning, wherever labels are read or
    written (``more``: what it adds on this command); :func:`class_table` reads it."""
    parser.add_argument(
        "--classes",
        metavar="FILE",
        help="the class table (YAML/JSON): names and colours of the classes (default: the "
        "model's own)" + more,
    )


def class_table(args: argparse.Namespace, teach: bool = False, new_ok: bool = False):
    """The ``--classes`` table (None without the flag), read before anything slow. Where the
    command cannot teach the model new classes (``teach`` False: segment, evaluate) its names
    are checked against the model's, from the file's header: a table the model cannot follow
    is one line now, not after the images were read. ``new_ok`` (``gui``): classes the model
    lacks pass the check (the app offers them for painting and Improve model learns them);
    classes of the model left out still do not."""
    if not getattr(args, "classes", None):
        return None
    from ..classes import ClassTable, check_known

    table = ClassTable.from_file(args.classes)
    if teach:
        return table
    from ..inference.segmenter import DEFAULT_MODEL
    from ..models.checkpoint import read_metadata

    model = Path(args.model) if args.model else DEFAULT_MODEL
    if model.suffix.lower() == ".onnx" or getattr(args, "runtime", None) == "onnx":
        raise AerialSegError("--classes runs with --runtime torch (a checkpoint)")
    own = ClassTable.from_dict(read_metadata(model)["classes"])
    check_known(table, own, args.classes, new_ok=new_ok)
    return table


def number(kind: type, low: float | None = None, high: float | None = None, low_open=False):
    """An argparse type: ``kind`` (int or float) within [low, high] (``low`` excluded when
    ``low_open``), so a bad value is refused before anything is loaded."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_scales(p: argparse.ArgumentParser) -> None:
    """``--scales``: the model sees the image resampled by each factor; their mean is used."""
    one = number(float, 0.1, 4)

    def parse(text: str) -> tuple[float, ...]:
        return tuple(one(t) for t in text.split(","))

    parse.__name__ = "scales"
    p.add_argument(
        "--scales",
        type=parse,
        default=(1.0,),
        metavar="F[,F...]",
        help="resample the image by F before the model sees it (0.5: half size, for imagery "
        "finer than the training data's); several: the mean of their maps (default: 1)",
    )


class Deprecated(argparse.Action):
    """An old flag spelling: works as ``dest`` does, and says once what to write instead."""

    def __init__(self, option_strings, dest, instead: str, **kw):
        self.instead = instead
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"aerialseg: note: {option_string} is deprecated here; use {self.instead}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _flag_type(annotation: str):
    """argparse settings for a field annotation: str, int, float, bool, list[...], X | None."""
    t = annotation.replace(" | None", "")
    if t == "bool":
        return {"action": argparse.BooleanOptionalAction}
    if t.startswith("list["):
        item = {"str": str, "int": int, "float": float}[t[5:-1]]
        return {
            "type": lambda s: [item(v.strip()) for v in s.split(",") if v.strip()],
            "metavar": "A,B,...",
        }
    if t == "str":
        return {"type": str}
    return {"type": {"int": int, "float": float}[t], "metavar": {"int": "N", "float": "X"}[t]}


def add_config_flags(
    parser: argparse.ArgumentParser, config_cls, title: str, skip: tuple[str, ...] = ()
) -> None:
    """One ``--flag`` per field of ``config_cls``. Unset flags stay ``None``, so they override
    nothing from a preset, config file or resumed run."""
    group = parser.add_argument_group(title)
    defaults = config_cls()
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        kw = _flag_type(f.type)
        default = getattr(defaults, f.name)
        text = f.metadata.get("help", "")
        choices = field_choices(f)
        if choices is not None:
            kw["choices"] = choices
        if default not in (None, "", []):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            text += f" (default: {shown})"
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            help=text.replace("%", "%%"),
            **kw,
        )


def flag_values(args: argparse.Namespace, config_cls) -> dict:
    """The config fields given on the command line (unset flags are left out)."""
    names = (f.name for f in dataclasses.fields(config_cls))
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def add_run_folder(parser: argparse.ArgumentParser) -> None:
    """``--out RUN_DIR`` for a new run, or ``--resume RUN_DIR`` to continue one."""
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder to create")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")


def run_folder(args: argparse.Namespace) -> tuple[Path, dict | None]:
    """The run folder, and for ``--resume`` the config the run was started with (flags given
    now override it)."""
    if args.resume:
        run = Path(args.resume)
        if not (run / "config.json").is_file():
            raise AerialSegError(f"{run}: not a run folder (no config.json) - cannot resume")
        if args.out and Path(args.out) != run:
            raise AerialSegError("--resume continues RUN_DIR in place; drop --out")
        return run, read_mapping(run / "config.json")
    if not args.out:
        raise AerialSegError("give --out RUN_DIR (or --resume RUN_DIR)")
    return Path(args.out), None


def add_vector_labels(parser: argparse.ArgumentParser, labels: str | None = None) -> None:
    """``--class-field``, ``--layer``, ``--line-width`` (and ``--labels FILE`` with help
    ``labels``, where the command has no ``--labels`` of its own): labels drawn as shapes in
    a GIS, the same flags with one meaning in ``train``, ``evaluate`` and ``finetune``."""
    if labels:
        parser.add_argument("--labels", metavar="FILE", help=labels)
    g = parser.add_argument_group(
        "vector labels (--labels a GeoPackage, GeoJSON, Shapefile...: shapes burned onto each "
        "image's grid, reprojected; where shapes overlap, the smaller wins)"
    )
    g.add_argument(
        "--class-field",
        metavar="NAME",
        help="the attribute holding each shape's class: a class name (any case) or index",
    )
    g.add_argument("--layer", metavar="NAME", help="the layer to read, where the file has several")
    g.add_argument(
        "--line-width",
        type=number(float, 0, low_open=True),
        metavar="METRES",
        help="line features label a band this wide, in metres (without it lines are refused)",
    )


def vector_options(args: argparse.Namespace, folders: bool = False):
    """The vector-label flags of ``args``, checked before anything slow (see
    :func:`check_vector_labels`)."""
    return check_vector_labels(
        args.labels, args.class_field, args.layer, args.line_width, folders=folders
    )


def check_vector_labels(labels, class_field, layer, line_width, folders: bool = False):
    """:class:`~aerialseg.gis.vector_labels.VectorOptions` when ``labels`` is a vector file
    (its layer and class field checked in the file), None when there are no vector labels
    (``folders``: a folder of label images is the other kind ``--labels`` takes). Flags for
    vector labels without them are a mistake, not ignored."""
    from ..gis.vector_labels import VectorOptions, check_layer, is_vector_file

    given = {"--class-field": class_field, "--layer": layer, "--line-width": line_width}
    given = [flag for flag, value in given.items() if value not in (None, "")]
    if not labels or not is_vector_file(labels):
        if labels and not (folders and Path(labels).is_dir()):
            kinds = "a folder of label images or a vector file" if folders else "a vector file"
            raise AerialSegError(
                f"{labels}: --labels takes {kinds} (.gpkg, .geojson, .shp, ...)"
                + ("" if Path(labels).exists() else "; no such file")
            )
        if given:
            raise AerialSegError(f"{given[0]} is for vector --labels (a .gpkg, .geojson, .shp...)")
        return None
    options = VectorOptions(class_field or None, layer or None, line_width)
    check_layer(labels, options)
    return options


def report_failures(failures: list[str]) -> int:
    """Exit status 1 after listing what failed, 0 when nothing did."""
    if not failures:
        return 0
    print(f"aerialseg: {len(failures)} failed:", file=sys.stderr)
    for f in failures:
        print(f"  {f}", file=sys.stderr)
    return 1


def subcommand(sub, name: str, func, help: str, description: str | None = None):
    """Add command ``name`` that runs ``func(args)``; the one way every command is added."""
    p = sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".")
    p.set_defaults(func=func)
    return p
