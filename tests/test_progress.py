"""Progress suits where it goes: a bar on a terminal, a few plain lines in a log."""

import io

from prunelab.cli.out import bar, show_now


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


def test_each_retraining_epoch_gets_a_line_in_a_log():
    """A retraining point runs for minutes to hours between bar updates: each epoch it reports
    is a line of its own, not held back for the next point."""
    log = io.StringIO()
    progress = bar(2, "sweep", "point", stream=log)
    for epoch in (1, 2, 3):
        show_now(progress, method="global+gradual", epoch=epoch, train_top1="90.1%")
    lines = log.getvalue().splitlines()
    assert [sum(f"epoch={e}" in line for line in lines) for e in (1, 2, 3)] == [1, 1, 1], lines
    progress.close()


def test_a_resumed_bar_keeps_its_lines_coming(monkeypatch):
    """A training resumed at step 8,216 logs its steps as before, not once per 8,216 more (tqdm
    sizes its lines by the last jump) and not at a rate of thousands of steps a second."""
    import prunelab.cli.out as out

    monkeypatch.setattr(out, "PLAIN_EVERY_S", 0.0)
    log = io.StringIO()
    progress = bar(10_000, "train", "step", stream=log)
    out.start_at(progress, 8216)
    for _ in range(5):
        progress.update(1)
    lines = log.getvalue().splitlines()
    assert any("8221/10000" in line for line in lines), lines
    assert sum("/10000" in line for line in lines[1:]) >= 5, lines
    progress.close()


def test_a_quiet_bar_resumes_too():
    """Under torchrun the other processes' bars are off: a resumed training starts them as well."""
    import prunelab.cli.out as out

    progress = bar(10_000, "train", "step", quiet=True, stream=io.StringIO())
    out.start_at(progress, 8216)  # before the fix: AttributeError, and the torchrun's training failed
    progress.update(1)  # counts nothing, shows nothing
    assert progress.n == 8216
    progress.close()
