"""Every `prunelab` command in README.md and docs/RESULTS.md names a command and options the CLI has.

Nothing is run: each command line is split with `shlex` and checked against the click objects of
`prunelab.cli`, so a renamed or removed option fails here instead of in a reader's shell.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from prunelab.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/RESULTS.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SHELL_BLOCKS = {"bash", "sh", "shell", "console", ""}


def _logical_lines(block: str) -> list[str]:
    """The block's lines with `\\` continuations and lines inside an open double quote joined,
    whole-line comments dropped (a comment after a command is left to the splitter)."""
    lines, current = [], ""
    for raw in block.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
        elif (current + stripped).count('"') % 2:  # R="... spans lines
            current += stripped + " "
        else:
            lines.append(current + stripped)
            current = ""
    if current:
        lines.append(current)
    return lines


def _expanded(lines: list[str]) -> list[str]:
    """The lines with `$NAME` replaced by what an earlier `NAME="..."` line of the block set."""
    values, out = {}, []
    for line in lines:
        for name, value in values.items():
            line = re.sub(rf"\$\{{?{name}\b\}}?", lambda _, value=value: value, line)
        assignment = re.fullmatch(r'([A-Za-z_]\w*)=(?:"([^"]*)"|(\S+))', line.split("  #")[0].strip())
        if assignment:
            values[assignment[1]] = assignment[2] if assignment[2] is not None else assignment[3]
        out.append(line)
    return out


def _words(line: str) -> list[str]:
    """The line split as a shell would, comments removed; [] when it does not split."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote: a variable assigned over several lines
        return []


def _invocations(words: list[str]) -> list[tuple[str, list[str]]]:
    """(program, arguments) for every simple command of a line: split at ; && || and |, with
    `time`, `nohup`, `nice` and leading VAR=value assignments set aside."""
    commands, current = [], []
    for word in words + [";"]:
        if word and set(word) <= set(";&|"):
            while current and (current[0] in ("time", "nohup", "nice", "do", "then")
                               or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", current[0])):
                current.pop(0)
            if current:
                commands.append((current[0], current[1:]))
            current = []
        else:
            current.append(word)
    return commands


def _prunelab_args(program: str, args: list[str]) -> list[str] | None:
    """The arguments given to prunelab, or None when the command is not prunelab."""
    if program == "prunelab":
        return args
    if program.startswith("python") and args[:2] == ["-m", "prunelab"]:
        return args[2:]
    if program == "torchrun" and "-m" in args and args[args.index("-m") + 1] == "prunelab":
        return args[args.index("-m") + 2:]
    return None


def _shell_invocations():
    """(document, line, program, arguments) for every program run in a shell block of the documents."""
    for name in DOCUMENTS:
        text = (ROOT / name).read_text()
        for language, block in FENCE.findall(text):
            if language not in SHELL_BLOCKS:
                continue
            for line in _expanded(_logical_lines(block)):
                for program, args in _invocations(_words(line)):
                    yield name, line, program, args


def doc_commands() -> list[tuple[str, str, list[str]]]:
    """(document, the line as written, prunelab's arguments) for every prunelab command in a
    shell block of the documents."""
    found = []
    for name, line, program, args in _shell_invocations():
        args_of_prunelab = _prunelab_args(program, args)
        if args_of_prunelab is not None:
            found.append((name, line, args_of_prunelab))
    return found


def doc_scripts() -> list[tuple[str, str, str]]:
    """(document, line, script path) for every `python path/to/script.py` in a shell block."""
    return [(name, line, args[0]) for name, line, program, args in _shell_invocations()
            if program.startswith("python") and args and args[0].endswith(".py")]


def _options(command: click.Command) -> dict[str, click.Option]:
    """Every option string the command accepts (--x, --no-x, -x), mapped to its option."""
    accepted = {}
    for param in command.get_params(click.Context(command)):
        if isinstance(param, click.Option):
            for flag in param.opts + param.secondary_opts:
                accepted[flag] = param
    return accepted


def check(args: list[str]) -> list[str]:
    """What is wrong with one prunelab invocation: an unknown command or an unknown option."""
    if not args:
        return ["no command"]
    name = args[0]
    if name.startswith("-"):
        return [] if name in ("-h", "--help", "--version") else [f"{name} before a command"]
    command = cli.commands.get(name)
    if command is None:
        return [f"no command {name!r} (commands: {', '.join(sorted(cli.commands))})"]
    accepted = _options(command)
    wrong = []
    for word in args[1:]:
        if not word.startswith("-") or word == "-" or word.startswith("$"):
            continue
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"-\d.*", flag):  # a negative number given as a value
            continue
        if flag not in accepted:
            wrong.append(f"`prunelab {name}` has no option {flag}")
    return wrong


def test_the_documents_hold_prunelab_commands():
    commands = doc_commands()
    assert len(commands) > 40, "the extraction found too few commands: the parser broke"
    assert {name for name, _, _ in commands} == set(DOCUMENTS)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_command_in_the_document_parses_against_the_cli(document):
    problems = []
    for name, line, args in doc_commands():
        if name == document:
            problems += [f"{problem}\n    in: {line}" for problem in check(args)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_python_script_in_the_document_exists(document):
    missing = [f"{script}  (in: {line})" for name, line, script in doc_scripts()
               if name == document and not (ROOT / script).is_file()]
    assert not missing, "\n".join(missing)


def test_the_checker_catches_what_it_is_for():
    assert check(["sweep", "ckpt", "--methods", "global", "--levels", "0.5"]) == []
    assert check(["sweep", "ckpt", "--no-amp", "--bn-augment", "--no-bn-augment"]) == []
    assert check(["sweep", "ckpt", "--no-such-option", "1"])
    assert check(["no-such-command"])
    assert _logical_lines("# a comment\nprunelab sweep a \\\n    --out b   # trailing\n") == [
        "prunelab sweep a  --out b   # trailing"]
    assert _expanded(_logical_lines('R="a --lr 0.1\n   --epochs 2"\nprunelab sweep $R --out o')) == [
        'R="a --lr 0.1 --epochs 2"', "prunelab sweep a --lr 0.1 --epochs 2 --out o"]
    assert _words("prunelab report a --no-gif; ls  # note") == [
        "prunelab", "report", "a", "--no-gif", ";", "ls"]
    assert _invocations(_words("time OMP_NUM_THREADS=1 prunelab report r; prunelab retime r")) == [
        ("prunelab", ["report", "r"]), ("prunelab", ["retime", "r"])]


LINKED = ("README.md", "docs/RESULTS.md", "docs/ARCHITECTURE.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "history").glob("*.md")))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a file's headings (code blocks skipped; repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    text = FENCE.sub("", path.read_text())
    for title in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


@pytest.mark.parametrize("document", LINKED)
def test_every_local_link_and_anchor_in_the_document_resolves(document):
    source = ROOT / document
    broken = []
    for target in LINK.findall(FENCE.sub("", source.read_text())):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (source.parent / file).resolve() if file else source
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT) if ROOT in path.parents else path}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, "\n".join(broken)
