"""What the run configurations share: fields that carry their help text, allowed values and
bounds (the command line generates its flags from them), dict round trips, and one clear
error for a bad value."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from .errors import AerialSegError
from .runtime import check_device


def opt(
    default,
    help: str,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
):
    """A config field with its help text, allowed values (a sequence, or a function giving
    them, for registries) and numeric bounds; ``low_open`` excludes ``low`` itself."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_choices(f: dataclasses.Field) -> Sequence[str] | None:
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


class Config:
    """What the task configs share: dict round trips and checks of every field's value."""

    RENAMED = {"model": "arch"}  # old key -> new key, so older config files and runs still load
    # Written into config.json for the record (by the training loop), not settings: dropped
    # when a config is read back.
    RECORDED = ("world_size",)
    # Settings of the machine a run happens to be on: a resumed run takes them from the
    # command line (or their defaults), never from the run folder, so a run started on a GPU
    # resumes on a CPU.
    PER_MACHINE = ("device",)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        d = {k: v for k, v in d.items() if k not in cls.RECORDED}
        for old, new in cls.RENAMED.items():
            if old in d and new not in d:
                d[new] = d.pop(old)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise AerialSegError(f"unknown config keys: {', '.join(unknown)}")
        cfg = dataclasses.replace(cls(), **d)
        cfg.check()
        return cfg

    def check(self) -> None:
        """One clear error for a value of the wrong type, not allowed, or out of bounds."""
        for f in dataclasses.fields(self):
            value, name = getattr(self, f.name), f.name.replace("_", " ")
            if value is None:
                if "None" in str(f.type):
                    continue
                raise AerialSegError(f"{name} must be set, not null")
            kind = _kind(f)
            ok = {
                "bool": isinstance(value, bool),
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                "str": isinstance(value, str),
                "list": isinstance(value, list),
            }[kind]
            if not ok:
                article = "an" if kind == "int" else "a"
                raise AerialSegError(f"{name} must be {article} {kind}, not {value!r}")
            if kind == "float" and not math.isfinite(value):
                raise AerialSegError(f"{name} must be a finite number, not {value}")
            if kind == "list":
                _check_items(f, value, name)
            choices = field_choices(f)
            if choices is not None and value not in choices:
                raise AerialSegError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
            low, high = f.metadata.get("low"), f.metadata.get("high")
            if low is not None and (value < low or (f.metadata["low_open"] and value == low)):
                bound = f"> {low}" if f.metadata["low_open"] else f">= {low}"
                raise AerialSegError(f"{name} must be {bound}, not {value}")
            if high is not None and value > high:
                raise AerialSegError(f"{name} must be <= {high}, not {value}")
        if hasattr(self, "device"):
            check_device(self.device)


def _check_items(f: dataclasses.Field, value: list, name: str) -> None:
    """The items of a list field have the type its annotation names (``list[float]``...)."""
    item = str(f.type).replace(" | None", "")[5:-1]
    for v in value:
        ok = {
            "str": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        }.get(item, True)
        if not ok:
            raise AerialSegError(f"{name} must be a list of {item} values, not {value!r}")


def _kind(f: dataclasses.Field) -> str:
    """bool, int, float, str or list, from the field's annotation (a string here)."""
    t = str(f.type).replace(" | None", "")
    return "list" if t.startswith("list") else t
