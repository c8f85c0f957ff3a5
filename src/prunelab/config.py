"""Configuration: frozen dataclasses <- a TOML/JSON file <- command-line overrides, resolved once."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TypeVar

import tomllib

from .errors import PrunelabError

T = TypeVar("T")


def setting(default=dataclasses.MISSING, help: str = "", *, flag: str | None = None, factory=None,
            choices=None, parse=None, shown: str | None = None, cli: bool = True):
    """A config dataclass field that carries its command-line help, so a default lives in one place.

    Args:
        default: the default (or `factory` for a mutable one).
        help: one line for `-h`; the default is appended there.
        flag: the option's name when it is not the field's (e.g. '--train-batch-size').
        choices: a callable returning the accepted values (read from a registry when asked).
        parse: text -> value, for options whose text is not the value (levels).
        shown: the default as `-h` shows it, when the value reads badly (a grid of 21 levels).
        cli: False for fields no command line sets.
    """
    metadata = {"help": help, "flag": flag, "choices": choices, "parse": parse, "shown": shown, "cli": cli}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def resolve(cls: type[T], file: str | Path | None = None, **overrides) -> T:
    """Build `cls` from its defaults, then `file` (TOML or JSON), then non-None `overrides`.

    Args:
        cls: a dataclass type (e.g. SweepConfig, TrainConfig).
        file: optional config file; unknown keys are an error, not ignored.
        overrides: values given on the command line; None means "not given".
    """
    values: dict = {}
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text()
            values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as exc:
            raise PrunelabError(f"cannot read config file {path}: {exc}") from None
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(values.get(key), dict):  # a nested table: merge
            value = {**values[key], **{k: v for k, v in value.items() if v is not None}}
        values[key] = value
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise PrunelabError(f"unknown config key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(names))}")
    for name, f in names.items():
        if name not in values:
            continue
        if isinstance(values[name], list) and "tuple" in str(f.type):  # JSON/TOML lists -> tuples
            values[name] = tuple(values[name])
        nested = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if isinstance(values[name], dict) and dataclasses.is_dataclass(nested):
            values[name] = resolve(nested, **values[name])
    try:
        return cls(**values)
    except TypeError as exc:
        raise PrunelabError(f"incomplete configuration: {exc}") from None
