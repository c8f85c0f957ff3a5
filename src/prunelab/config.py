"""Configuration: frozen dataclasses <- a TOML/JSON file <- command-line overrides, resolved once."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TypeVar

import tomllib

from .errors import PrunelabError

T = TypeVar("T")


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
    values.update({k: v for k, v in overrides.items() if v is not None})
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
