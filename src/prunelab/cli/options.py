"""Command-line options made from the config dataclasses' fields, so a default and its help live in
one place (the field); a command's values go back to `resolve` by field name."""

from __future__ import annotations

import dataclasses
import typing

import click

from ..errors import PrunelabError


def _flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def dest(field: dataclasses.Field) -> str:
    """The keyword the command receives for `field` (its flag, as a Python name)."""
    return _flag(field).removeprefix("--").replace("-", "_")


def _comma(kind, flag: str):
    def parse(text: str):
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise PrunelabError(f"{flag} '{text}' is not a comma-separated list of {kind.__name__}") from None
    return parse


def _parser(field: dataclasses.Field, hint):
    """text -> value for a field: the field's own parser, a comma list for tuples, else None."""
    if field.metadata.get("parse"):
        return field.metadata["parse"]
    if typing.get_origin(hint) is tuple:
        return _comma(typing.get_args(hint)[0], _flag(field))
    return None


def _scalar(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0] if args[0] in (int, float, str, bool) else str


def _option(field: dataclasses.Field, hint) -> typing.Callable:
    flag, kind = _flag(field), _scalar(hint)
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    shown = field.metadata.get("shown") or (",".join(map(str, default)) if isinstance(default, tuple)
                                            else default)
    text = field.metadata.get("help", "")
    if kind is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", dest(field), default=None,
                            help=f"{text} [default: {'on' if default else 'off'}]")
    if default is not None and default is not dataclasses.MISSING:
        text += f" [default: {shown}]"
    typed = None if _parser(field, hint) else kind
    return click.option(flag, dest(field), type=typed, default=None, help=text)


def options(cls, only: tuple[str, ...] | None = None, skip: tuple[str, ...] = ()):
    """Decorator: one option per command-line field of dataclass `cls` (`only`/`skip` by name)."""
    hints = typing.get_type_hints(cls)

    def wrap(f):
        for field in reversed(dataclasses.fields(cls)):
            if not field.metadata.get("cli", True) or field.name in skip or (only and field.name not in only):
                continue
            f = _option(field, hints[field.name])(f)
        return f

    return wrap


def values(cls, given: dict) -> dict:
    """The fields of `cls` a command was given, parsed, by field name (None: not given)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for field in dataclasses.fields(cls):
        key = dest(field)
        if key not in given or given[key] is None:
            continue
        parse = _parser(field, hints[field.name])
        out[field.name] = parse(given[key]) if parse else given[key]
    return out
