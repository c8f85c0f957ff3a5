"""report.html: report.md's content on one self-contained page (inline CSS, JS and SVG plots; sortable
tables), laid out from the same read-model and tables, so both say the same numbers."""

from __future__ import annotations

import base64
import json
import re
import shlex
from html import escape
from pathlib import Path

from . import content
from .content import Table
from .markdown import facts
from .read import Point, RunView

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; } td.n, th.n { text-align: right; }
td { font-variant-numeric: tabular-nums; } th { background: #f3f3f3; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.scroll { overflow-x: auto; } .plot svg { width: 100%; height: auto; } .plot img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; } .note { color: #444; max-width: 75em; }
"""

# Click a header: sort by that column (numbers as numbers, empty cells last), again to reverse.
JS = """
function sortKey(td) {
  var v = td.getAttribute("data-v");
  if (v !== null) return v === "" ? null : parseFloat(v);
  var t = td.textContent.trim(), n = parseFloat(t.replace(/,/g, ""));
  return t === "" || t === "\\u2013" ? null : (isNaN(n) ? t : n);
}
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var up = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
      if (x === null || y === null) return (x === null) - (y === null);
      var c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

NUM = ' class="n"'  # a number: right-aligned

# Every stored point's own numbers: (header, Point field, format of a value).
POINT_COLUMNS = [
    ("method", "method", str), ("target sparsity", "target_sparsity", lambda v: f"{100 * v:.1f}%"),
    ("seed", "seed", str), ("sparsity (measured)", "sparsity", lambda v: f"{100 * v:.2f}%"),
    ("top-1 %", "top1", lambda v: f"{v:.2f}"), ("top-5 %", "top5", lambda v: f"{v:.2f}"),
    ("loss", "loss", lambda v: f"{v:.4f}"), ("nonzero params", "nonzero_params", lambda v: f"{v:,}"),
    ("MACs as run (M)", "macs", lambda v: f"{v / 1e6:,.2f}"),
    ("effective MACs (M, theory)", "effective_macs", lambda v: f"{v / 1e6:,.2f}"),
    ("file bytes", "file_bytes", lambda v: f"{v:,}"), ("file format", "file_format", str),
    ("latency b1 (ms)", "latency_b1", lambda v: f"{1e3 * v:,.3f}"),
    ("latency b64 (ms)", "latency_b64", lambda v: f"{1e3 * v:,.2f}"),
    ("bits", "bits", str), ("seconds", "seconds", lambda v: f"{v:,.2f}"),
]


def html_page(data: RunView, files: dict[str, Path], run: Path) -> str:
    """The whole page; `files` are the report's files already written (plots are read to inline)."""
    budget = next(iter(data.answers.values())).budget
    parts = [f"<h1>{escape(content.title(data))}</h1>", '<section id="answer">',
             table(content.answer_table(data)), para(content.budget_note(data)), "</section>",
             "<h2>Accuracy against sparsity</h2>", svg(files["plot_svg"]),
             f'<p><a href="{escape(files["csv"].name)}">CSV of every point</a> · '
             f'<a href="{escape(files["markdown"].name)}">report.md</a></p>']
    if "gif" in files:
        parts += ["<h2>Pruning, level by level</h2>", para(content.gif_caption(data)), gif(files["gif"])]
    parts += ["<h2>Every point</h2>", para("One row per stored point (method, level, seed), as in the "
                                           "CSV. Click a column's header to sort by it."),
              points_table(data.points)]
    if "savings_svg" in files:
        note, rows = content.savings(data)
        parts += ["<h2>What the pruned models really save</h2>", svg(files["savings_svg"]), para(note),
                  table(rows, sortable=True)]
    if "memory_svg" in files:
        answer, note, rows = content.memory(data, budget)
        parts += ["<h2>Memory: top-1 against the file on disk</h2>", svg(files["memory_svg"]), para(answer),
                  para(note), table(rows, sortable=True)]
    for heading, (note, rows) in (("Per-layer sparsity at each answer", content.layers(data)),
                                  ("Top-1 at every level", content.accuracy(data)),
                                  ("Sizes at each answer", content.sizes(data))):
        parts += [f"<h2>{escape(heading)}</h2>", para(note), table(rows, sortable=True)]
    parts += ["<h2>Run</h2>", "<ul>", *(f"<li>{escape(k)}: {inline(v)}</li>" for k, v in facts(data)),
              "</ul>",
              "<h2>Recipe</h2>", para("The sweep's configuration, as stored with its results."),
              recipe(data.config), "<h2>Commands</h2>", commands(data, run, "gif" in files)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(content.title(data))}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + f"\n<script>{JS}</script>\n</body>\n</html>\n")


def inline(text: str) -> str:
    """Escaped text with the tables' two inline marks drawn: **strong** and `code`."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escape(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def para(text: str) -> str:
    return f'<p class="note">{inline(text)}</p>'


def table(t: Table, sortable: bool = False) -> str:
    def cls(i: int) -> str:
        return "" if i < t.left else NUM

    head = "".join(f"<th{cls(i)}>{inline(h)}</th>" for i, h in enumerate(t.head))
    body = "\n".join("<tr>" + "".join(f"<td{cls(i)}>{inline(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                     for row in t.rows)
    kind = ' class="sortable"' if sortable else ""
    return (f'<div class="scroll"><table{kind}>\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table></div>")


def points_table(points: list[Point]) -> str:
    """Every point's stored numbers; each cell carries its raw value (data-v) to sort by."""
    columns = [c for c in POINT_COLUMNS if any(getattr(p, c[1]) is not None for p in points)]
    head = "".join(f"<th{'' if i == 0 else NUM}>{escape(h)}</th>" for i, (h, _, _) in enumerate(columns))
    rows = []
    for p in points:
        cells = []
        for i, (_, name, fmt) in enumerate(columns):
            v = getattr(p, name)
            key = "" if isinstance(v, str) else ' data-v=""' if v is None else f' data-v="{float(v)!r}"'
            cells.append(f"<td{key}{'' if i == 0 else NUM}>{'–' if v is None else escape(fmt(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="sortable" id="points">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n" + "\n".join(rows) + "\n</tbody></table></div>")


def svg(path: Path) -> str:
    """The plot's SVG inlined (vector: it zooms), without its XML prologue."""
    text = path.read_text(encoding="utf-8")
    return f'<div class="plot">{text[text.index("<svg"):]}</div>'


def gif(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<div class="plot"><img alt="weights vanishing layer by layer" '
            f'src="data:image/gif;base64,{data}"></div>')


def recipe(config: dict) -> str:
    """The stored configuration, one setting a row (nested tables as 'recovery.epochs')."""
    def flat(d: dict, prefix: str = ""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v if isinstance(v, str) else json.dumps(v)

    rows = [[f"`{k}`", str(v)] for k, v in flat(config)]
    return table(Table(["setting", "value"], rows, left=2), sortable=True) if rows else para("none stored")


def commands(data: RunView, run: Path, with_gif: bool) -> str:
    """How to remake this report, retime its points and resume or extend its sweep."""
    cfg, q = data.config, shlex.quote
    budget = next(iter(data.answers.values())).budget
    items = [("rewrite this report from the store alone",
              f"prunelab report {q(str(run))} --budget {budget:g}" + ("" if with_gif else " --no-gif"))]
    if data.dense.latency_b1 is not None:
        items.append(("time every point again, side by side, and rewrite the report",
                      f"prunelab retime {q(str(run))}"))
    if cfg.get("checkpoint"):
        sweep = (f"prunelab sweep {q(str(cfg['checkpoint']))} --out {q(str(run))}"
                 f" --methods {q(','.join(cfg.get('methods', ())))}"
                 f" --levels {q(','.join(f'{s:g}' for s in cfg.get('levels', ())))}"
                 f" --seeds {q(','.join(str(s) for s in cfg.get('seeds', ())))}")
        items.append(("resume or extend the last sweep into this folder (its other settings: the "
                      "configuration above; a method's stored points keep the recipe under Run)", sweep))
    return "\n".join(f"<p>{escape(what)}:</p><pre><code>{escape(line)}</code></pre>" for what, line in items)
