"""Configuration: frozen dataclasses <- a TOML/JSON file <- command-line overrides, resolved once."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import types
import typing
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
        if not isinstance(values, dict):
            raise PrunelabError(f"config file {path} must hold a table of settings, "
                                f"got {type(values).__name__}")
        values = typed(cls, values, str(path))
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


class _Mismatch(Exception):
    pass


def typed(cls: type, values: dict, where: str) -> dict:
    """A config file's values for `cls`, each checked against its field's type (ints are not
    bools, a number is not a string, a list holds what the field holds), nested tables too; a
    field that parses text (levels) takes its text. Unknown keys are left to `resolve`."""
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, hint, key = values[f.name], hints[f.name], f"{where}: {f.name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise PrunelabError(f"config file {key} must be a table of settings, got {value!r}")
            out[f.name] = typed(hint, value, key)
        elif f.metadata.get("parse") and isinstance(value, str):
            out[f.name] = f.metadata["parse"](value)
        else:
            try:
                out[f.name] = _as(value, hint)
            except _Mismatch:
                raise PrunelabError(f"config file {key} must be {_describe(hint)}, got {value!r}") from None
    return out


def _as(value, hint):
    """`value` as type `hint` (int -> float widening only), or _Mismatch."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            with contextlib.suppress(_Mismatch):
                return _as(value, arg)
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        return tuple(_as(v, args[0]) for v in value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, str) and type(value) is hint:
        return value
    if hint not in (bool, int, float, str):
        return value  # a type this check does not know: left to the field's own validation
    raise _Mismatch


def _describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is tuple:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))
