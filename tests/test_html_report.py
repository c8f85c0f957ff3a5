"""Tests for report.html (in a real headless Chromium where one is installed), the atomic swap of the
report folder, deterministic plots, and the savings panel and ratios."""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from test_report import FINGERPRINT, make_store  # tests/ is on sys.path (pytest prepend mode)

import prunelab.report as report_module
from prunelab.errors import PrunelabError
from prunelab.experiment.store import Store
from prunelab.report import write_report
from prunelab.report.plots import savings_figure
from prunelab.report.read import pct, read_run

DENSE_MACS = 1_000_000


def with_savings(p):
    """The point as a sweep measuring savings stores it: masked models run the dense MACs."""
    density = 1 - p.sparsity
    return dataclasses.replace(p, macs=DENSE_MACS, effective_macs=DENSE_MACS * (0.02 + 0.98 * density),
                               file_bytes=int(0.8 * p.sparse_bytes), file_format="sparse")


def savings_store(folder: Path, fingerprint: dict = FINGERPRINT) -> None:
    points = make_store(folder.parent / f"{folder.name}-plain")
    store = Store.create(folder, fingerprint, {"methods": ["layerwise", "global", "random"], "seeds": [0, 1],
                                               "checkpoint": "runs/x/model", "levels": [0.0, 0.5, 1.0]})
    for p in points:
        store.add(with_savings(p))
    store.close()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A report of a run whose points carry savings (shared, read only)."""
    run = tmp_path_factory.mktemp("saved") / "run"
    savings_store(run)
    return run, write_report(run, n_boot=50)


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---- the page ----


def test_html_is_one_self_contained_page_with_what_markdown_says(saved):
    _, report = saved
    page = report.files["html"].read_text(encoding="utf-8")
    assert report.files["html"].name == "report.html" and page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from afar
    assert "<link" not in page and "@import" not in page
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))  # the GIF inlined
    assert page.count("<svg") == 3 and "<?xml" not in page  # sparsity, savings, memory plots inline
    markdown = report.files["markdown"].read_text(encoding="utf-8")
    answer_rows = [ln for ln in markdown.splitlines() if ln.startswith("| ")][1:4]
    for row in answer_rows:  # report.md's answer figures, each a cell of the page's first table
        for cell in (c.strip() for c in row.strip("|").split("|")):
            assert f">{cell}</td>" in page
    assert page.index('id="answer"') < page.index("<svg")  # the answer first
    for heading in ("Every point", "What the pruned models really save", "Per-layer sparsity at each answer",
                    "Recipe", "Commands"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<tr>") > 3 * 11  # the table of every point: a row each
    assert "prunelab report " in page and "--budget 1" in page


def test_html_escapes_every_text(tmp_path):
    run = tmp_path / "run"
    savings_store(run, {**FINGERPRINT, "model": "<script>alert(1)</script>"})
    page = write_report(run, n_boot=0, gif=False).files["html"].read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ---- atomic swap ----


def test_a_failed_report_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    run = tmp_path / "run"
    make_store(run, levels=(0.0, 0.5, 1.0))
    before = write_report(run, n_boot=0).folder
    old = contents(before)
    assert "pruning.gif" in old and "report.html" in old

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module, "markdown", disk_full)  # after the CSV, the plots and the GIF
    with pytest.raises(PrunelabError, match="No space left.*left as it was"):
        write_report(run, n_boot=0)
    assert contents(before) == old
    left = [p.name for p in run.iterdir() if p.name.startswith(".") and p.suffix != ".lock"]
    assert left == []  # no temporary left
    monkeypatch.undo()
    write_report(run, n_boot=0, gif=False)  # swapped in whole: the old GIF goes with the old report
    assert "pruning.gif" not in contents(before) and "report.html" in contents(before)


def test_a_folder_holding_other_files_is_not_replaced(tmp_path):
    run = tmp_path / "run"
    make_store(run, levels=(0.0, 0.5))
    with pytest.raises(PrunelabError, match="does not write.*results.sqlite"):
        write_report(run, n_boot=0, out=run, gif=False)
    assert (run / "results.sqlite").exists()


# ---- deterministic files ----


def test_the_same_run_reported_twice_gives_the_same_plot_files(tmp_path, saved):
    run, first = saved
    again = write_report(run, n_boot=50, out=tmp_path / "again", gif=False)
    for kind in ("plot_svg", "savings_svg", "memory_svg", "plot_png", "savings_png", "memory_png", "csv"):
        assert first.files[kind].read_bytes() == again.files[kind].read_bytes(), kind
    assert "<dc:date>" not in first.files["plot_svg"].read_text()


# ---- the savings panel and its ratios ----


def test_savings_middle_panel_spreads_masked_points_by_what_differs(saved):
    run, _ = saved
    data = read_run(run, 1.0, 0)
    fig = savings_figure(data)
    macs_axes = fig.axes[1]
    assert "effective MACs" in macs_axes.get_xlabel()
    lines = {ln.get_label(): ln for ln in macs_axes.get_lines() if ln.get_label() in data.curves}
    assert set(lines) == set(data.curves)
    for method, line in lines.items():  # one x per level, not every point on the dense count
        x = np.asarray(line.get_xdata())
        assert len(set(np.round(x, 9))) == len(x) == 11, method
    dotted = [ln for ln in macs_axes.get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == 1 and np.allclose(dotted[0].get_xdata(), DENSE_MACS / 1e6)  # what masks run
    assert len(fig.axes) == 3  # sparsity, MACs, file
    unmeasured = dataclasses.replace(data, points=[dataclasses.replace(p, file_bytes=None)
                                                   for p in data.points])
    assert len(savings_figure(unmeasured).axes) == 2  # no empty file panel


def test_ratios_against_nothing_are_not_printed(saved):
    _, report = saved
    text = report.files["markdown"].read_text(encoding="utf-8")
    rows = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ") and " M (" in ln}
    full = rows["layerwise at 100.0%"]
    assert "all prunable weights removed" in full.split("|")[4] and "x fewer" not in full.split("|")[4]
    assert "(same as dense)" in full.split("|")[3]  # masked models run the dense MACs
    assert "x fewer" in rows["layerwise at 50.0% (answer)"].split("|")[4]
    assert rows["dense"].count("same as dense") == 2
    assert "all prunable weights removed" in report.files["html"].read_text(encoding="utf-8")


# ---- in a real browser ----


def chromium(tmp_path: Path):
    """A headless Chromium under Selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(binary).exists() and shutil.which(Path(binary).name) is None:
            pytest.skip(f"{binary} is missing (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver), options=options)


def column(driver, table_id: str, index: int) -> list[float]:
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr td:nth-child({index + 1})")
    return [float(c.get_attribute("data-v")) for c in cells]


@pytest.mark.slow  # a sweep, a report and a browser: ~6 s
def test_report_in_a_headless_browser(tmp_path, digits_checkpoint):
    """A real sweep's report.html in Chromium: no console error, the answer shown, a header sorts."""
    from prunelab.api import sweep
    from prunelab.experiment.config import SweepConfig

    browser = chromium(tmp_path)  # skips before any work where there is none
    try:
        start = time.perf_counter()
        cfg = SweepConfig(checkpoint=str(digits_checkpoint), methods=("global", "layerwise"),
                          levels=(0.0, 0.5, 0.8, 1.0), device="cpu")
        sweep(cfg, tmp_path / "run", 1.0)
        report = write_report(tmp_path / "run", n_boot=50, gif=False)
        browser.get(report.files["html"].resolve().as_uri())
        from selenium.webdriver.common.by import By

        assert browser.title.startswith("Pruning report: smallcnn")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        answer = browser.find_element(By.ID, "answer")
        assert answer.is_displayed()
        for method, a in report.answers.items():
            assert method in answer.text and pct(a.sparsity) in answer.text
        heads = browser.find_elements(By.CSS_SELECTOR, "#points thead th")
        top1 = [h.text for h in heads].index("top-1 %")
        stored = column(browser, "points", top1)
        assert stored != sorted(stored)  # dense first, then each method's falling curve
        heads[top1].click()
        assert column(browser, "points", top1) == sorted(stored)
        heads[top1].click()
        assert column(browser, "points", top1) == sorted(stored, reverse=True)
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        print(f"sweep, report and browser checks: {time.perf_counter() - start:.1f} s")
    finally:
        browser.quit()
