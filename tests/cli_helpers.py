"""Running the CLI in-process and checking its one-line errors (shared by the CLI tests)."""

import sys

import pytest

from prunelab.cli import main


def run(monkeypatch, capsys, *args):
    """Run `prunelab ARGS` in this process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["prunelab", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def assert_user_error(code, err, *needles):
    """A user mistake: exit code 2 and exactly one line 'error: ...' holding every needle."""
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
