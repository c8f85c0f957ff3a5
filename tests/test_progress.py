"""Progress suits where it goes: a bar on a terminal, a few plain lines in a log."""

import io

from prunelab.cli.out import bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_few_plain_lines_not_hundreds_of_redraws():
    log = io.StringIO()
    progress = bar(1000, "sweep", "point", stream=log)
    for i in range(1000):
        progress.update(1)
        progress.set_postfix(point=i)  # would force a redraw each time
    progress.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 3, lines  # the start, the end (and at most one timed line between)
    assert "1000/1000" in lines[-1] and "point=999" in lines[-1]


def test_a_terminal_gets_the_redrawn_bar():
    term = _Terminal()
    progress = bar(50, "sweep", "point", stream=term)
    for _ in range(50):
        progress.update(1)
    progress.close()
    assert "\r" in term.getvalue()
