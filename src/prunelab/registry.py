"""One generic registry for every plug-in family: members declare themselves in their own files.

A family is a package (e.g. `prunelab.pruning.pruners`) whose modules each register members with
`@REGISTRY.register`; the first lookup imports every module of the package, so a new member is
one new file and nothing else. Names may also be patterns (`nm-N:M`) resolved by a factory.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import PrunelabError, unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Named members of one plug-in family, with listing and did-you-mean lookups.

    Args:
        kind: what a member is, for messages ("pruning method", "recovery", ...).
        package: the package whose modules declare the members; imported on first use.
    """

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self._package = package
        self._members: dict[str, T] = {}
        self._patterns: list[tuple[re.Pattern, str, Callable[[re.Match], T]]] = []
        self._loaded = package is None

    def register(self, member: T) -> T:
        """Add `member` (anything with a `name`); usable as a class or function decorator when
        the decorated object is itself the member or builds it."""
        name = getattr(member, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} needs a non-empty str `name`, got {member!r}")
        if name in self._members:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._members[name] = member
        return member

    def pattern(self, regex: str, example: str, build: Callable[[re.Match], T]) -> None:
        """Names matching `regex` (e.g. r'nm-(\\d+):(\\d+)') are built by `build(match)`;
        `example` is what listings show for the family."""
        self._patterns.append((re.compile(regex), example, build))

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self._package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def get(self, name: str) -> T:
        """The member called `name`, or a one-line error naming the close ones."""
        self._load()
        if name in self._members:
            return self._members[name]
        for regex, _, build in self._patterns:
            match = regex.fullmatch(name)
            if match:
                return build(match)
        raise unknown(self.kind, name, self.names())

    def names(self) -> list[str]:
        """Registered names in registration order, then each pattern's example."""
        self._load()
        return list(self._members) + [example for _, example, _ in self._patterns]

    def __iter__(self) -> Iterator[T]:
        self._load()
        return iter(list(self._members.values()))

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except PrunelabError:
            return False
        return True
