"""The import layers of docs/ARCHITECTURE.md hold: read from the source with `ast`, nothing imported.

A module may import prunelab modules of its own layer or a lower one, at the top of the file or
inside a function alike. Only the command line prints, reads argv or uses click.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "prunelab"

# Lowest first; docs/ARCHITECTURE.md draws the same table.
LAYERS = [
    {"__init__", "errors", "registry", "config", "distributed"},  # plumbing
    {"models", "data", "quant"},  # what a network, images and codes are
    {"pruning", "measure", "io"},  # masks and surgery, measurements, files (may use each other)
    {"training"},  # the fit loop
    {"recovery"},  # bn, ft, iter, gradual over a pruner
    {"experiment"},  # one point, the sweep, the store
    {"report"},  # reads the store
    {"api"},  # the verbs over files
    {"objects"},  # the verbs over the user's objects
    {"cli", "__main__"},  # the only printer
]
LAYER = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _top(path: Path) -> str:
    """The top-level package (or module) of prunelab a file belongs to."""
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imported(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """(line, top-level prunelab package) of every prunelab import in a file, however nested."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts[:-1]  # a module's package; an __init__'s own package is its folder
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            target = package[: len(package) - node.level + 1] + (node.module or "").split(".")
            target = [part for part in target if part]
            if target:
                found.append((node.lineno, target[0]))
            else:  # `from .. import x` at the top: x is a module of prunelab itself, or __version__
                found += [(node.lineno, alias.name if alias.name in LAYER else "__init__")
                          for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "prunelab":
            name = (node.module.split(".") + ["__init__"])[1]
            found.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, (alias.name.split(".") + ["__init__"])[1])
                      for alias in node.names if alias.name.split(".")[0] == "prunelab"]
    return found


def test_every_package_has_a_layer():
    tops = {_top(path) for path in _modules()}
    assert tops <= set(LAYER), f"give {sorted(tops - set(LAYER))} a layer here and in ARCHITECTURE.md"


def test_the_package_root_imports_nothing_until_a_verb_is_used():
    """`import prunelab` runs no prunelab import at module level: its `__getattr__` loads
    `objects` (the top of the library) on first use, so `from .. import __version__` anywhere
    below stays at the bottom layer."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    assert not [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("path", [p for p in _modules() if p != SRC / "__init__.py"],
                         ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_down_the_layers(path):
    mine = LAYER[_top(path)]
    upward = [f"{path.relative_to(SRC)}:{line} imports {name} (layer {LAYER[name]} > {mine})"
              for line, name in _imported(path) if name in LAYER and LAYER[name] > mine]
    assert not upward, "\n".join(upward)


def test_the_library_never_prints_reads_argv_or_uses_click():
    found = []
    for path in _modules():
        if _top(path) in ("cli", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{path.relative_to(SRC)}:{node.lineno} print()")
            if isinstance(node, ast.Attribute) and node.attr == "argv":
                found.append(f"{path.relative_to(SRC)}:{node.lineno} argv")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                         else [a.name for a in node.names])
                if any(name.split(".")[0] in ("click", "argparse") for name in names):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} imports {names}")
    assert not found, "\n".join(found)


def test_the_checker_sees_relative_and_nested_imports(tmp_path):
    folder = tmp_path / "prunelab" / "pruning"
    folder.mkdir(parents=True)
    (folder / "x.py").write_text(
        "from ..experiment import sweep\nfrom .masks import apply\nfrom . import base\n"
        "def f():\n    from prunelab.cli import main\n    import prunelab.api\n")
    found = sorted(_imported(folder / "x.py", root=tmp_path / "prunelab"))
    assert [name for _, name in found] == ["experiment", "pruning", "pruning", "cli", "api"]
