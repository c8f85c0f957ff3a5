"""The one exception type for user mistakes: the CLI prints its message on one line, exit 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PrunelabError(Exception):
    """A mistake the user can fix: bad input, missing data, a checkpoint that does not fit."""


class PrunelabWarning(UserWarning):
    """Something the user should know that does not stop the command: the CLI prints it on one line."""


def unknown(kind: str, name: str, choices: Iterable[str]) -> PrunelabError:
    """Build the error for an unknown registry name, suggesting the close ones.

    Args:
        kind: what was looked up ("model", "method", "dataset", ...).
        name: the name the user gave.
        choices: the names that exist.
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(choices)}"
    return PrunelabError(f"unknown {kind} '{name}': {hint}")
