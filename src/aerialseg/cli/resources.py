"""``aerialseg download`` (the Dubai dataset) and ``aerialseg models`` (the registry)."""

from __future__ import annotations

from ..config import DATA_ENV
from . import common


def cmd_download(args) -> int:
    from ..data.download import download, extract_archive

    root = extract_archive(args.archive, args.out) if args.archive else download(args.out)
    print(f"dataset ready at {root}\nuse it with: export {DATA_ENV}={root.resolve()}")
    return 0


def cmd_models(args) -> int:
    from ..models import create_model, list_models, model_task

    names = list_models(None)
    width = max(map(len, names)) + 2
    for name in names:
        m = create_model(name)
        n = sum(p.numel() for p in m.parameters())
        print(f"{name:<{width}}{model_task(name):<16}{n / 1e6:6.2f}M params  {m.kwargs}")
    return 0


def add_download(sub, help: str) -> None:
    d = common.subcommand(
        sub,
        "download",
        cmd_download,
        help,
        "Download the Dubai aerial dataset from Kaggle (needs kagglehub and internet), or "
        "unpack the zip downloaded by hand with --from; the images and masks land in --out.",
    )
    d.add_argument(
        "--out",
        default="data/dubai-aerial",
        metavar="DIR",
        help="where to put it (default: %(default)s)",
    )
    d.add_argument(
        "--from",
        dest="archive",
        metavar="ARCHIVE.zip",
        help="unpack an archive downloaded by hand instead of using kagglehub",
    )


def add_models(sub, help: str) -> None:
    common.subcommand(
        sub,
        "models",
        cmd_models,
        help,
        "List the architectures the registry knows (names for --arch), with their task, size "
        "and default arguments.",
    )


PARSERS = {"download": add_download, "models": add_models}
