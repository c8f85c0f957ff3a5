"""Tests for prunelab.report: files from a synthetic store, their contents, and store-only reading."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prunelab.errors import PrunelabError
from prunelab.experiment.analysis import answer, split
from prunelab.experiment.store import CSV_FIELDS, DENSE, STORE_FILE, Point, Store
from prunelab.report import write_report
from prunelab.report.gif import short_name as _short

N = 400  # test images
LAYERS = {"conv1.weight": 432, "layer1.0.conv1.weight": 2304, "layer1.0.conv2.weight": 2304,
          "layer2.0.conv1.weight": 4608, "layer2.0.conv2.weight": 9216}
FINGERPRINT = {"model": "resnet8", "weights_sha256": "ab" * 32, "data": "cifar10", "test_images": N,
               "test_sha256": "cd" * 32, "prune_classifier": False, "layer_cap": None}


# ---- helpers ----


def global_zeros(level: float, layers: dict[str, int]) -> dict[str, int]:
    """Zeros per layer that add up to `level` of all weights, big layers losing more (as global does)."""
    weight = {n: (size / max(layers.values())) ** 0.5 for n, size in layers.items()}
    lo, hi = 0.0, 1e6  # bisect the scale c: sum(min(1, c * weight) * size) = level * total
    for _ in range(60):
        c = (lo + hi) / 2
        zeros = sum(min(1.0, c * weight[n]) * size for n, size in layers.items())
        lo, hi = (c, hi) if zeros < level * sum(layers.values()) else (lo, c)
    return {n: round(min(1.0, lo * weight[n]) * size) for n, size in layers.items()}


def make_point(method: str, level: float, seed: int, knee: float, u: np.ndarray,
               layers: dict[str, int] = LAYERS) -> Point:
    """A point whose top-1 sags a little, then falls past `knee`; hits are nested (an image wrong at
    one level stays wrong at higher ones), as magnitude pruning roughly gives."""
    acc = 0.9 - 0.005 * level - (0.8 * max(0.0, level - knee) / (1 - knee) if knee < 1 else 0.0)
    hits = u < acc
    if method == "global":
        zeros = global_zeros(level, layers)
    else:
        zeros = {n: round(level * size) for n, size in layers.items()}
    prunable = sum(layers.values())
    nonzero = prunable - sum(zeros.values())
    total = prunable + 1000
    return Point(
        method=method, target_sparsity=level, seed=seed, sparsity=1 - nonzero / prunable,
        nonzero_params=nonzero, prunable_params=prunable, total_params=total,
        correct=int(hits.sum()), n_images=N, top1=100 * hits.mean(), top5=min(100.0, 100 * hits.mean() + 5),
        loss=0.3 + 2 * level, dense_bytes=4 * total,
        sparse_bytes=sum((n + 7) // 8 + (n - zeros[k]) * 4 for k, n in layers.items()) + 4000,
        seconds=0.01 * (1 + seed), layers={n: (zeros[n], size) for n, size in layers.items()}, hits=hits,
    )


LEVELS = tuple(round(0.1 * i, 6) for i in range(11))


def make_store(folder: Path, levels=LEVELS, methods=None,
               layers: dict[str, int] = LAYERS) -> list[Point]:
    """A run folder with dense + layerwise + global + random (2 seeds), like a finished sweep."""
    methods = methods if methods is not None else {"layerwise": (0.5, (0,)), "global": (0.7, (0,)),
                                                   "random": (0.1, (0, 1))}
    config = {"checkpoint": "runs/x/model", "data": "cifar10", "methods": list(methods),
              "levels": list(levels), "seeds": [0, 1], "prune_classifier": False}
    store = Store.create(folder, FINGERPRINT, config)
    u = np.random.default_rng(0).random(N)
    points = [make_point(DENSE, 0.0, 0, 1.0, u, layers)]
    for method, (knee, seeds) in methods.items():
        for seed in seeds:  # seeds of a stochastic method differ in where the knee falls
            points += [make_point(method, float(s), seed, knee + 0.04 * seed, u, layers) for s in levels]
    for p in points:
        store.add(p)
    store.close()
    (folder / "config.json").write_text("{}")
    return points


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One full report shared by the read-only tests (the GIF is the slow part)."""
    run = tmp_path_factory.mktemp("run")
    points = make_store(run)
    return run, points, write_report(run, budget=1.0, n_boot=300)


# ---- files ----


def test_files_written_where_said(built):
    run, _, report = built
    assert report.folder == run / "report"
    assert set(report.files) == {"csv", "markdown", "html", "plot_png", "plot_svg", "gif"}
    for path in report.files.values():
        assert path.parent == report.folder and path.stat().st_size > 0
    assert report.files["plot_svg"].read_text().lstrip().startswith("<?xml")


def test_csv_has_one_row_per_point_with_the_stored_values(built):
    run, _, report = built
    store = Store.open(run)
    stored = {p.key: p for p in store.points()}
    store.close()
    with open(report.files["csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_FIELDS
    assert len(rows) - 1 == len(stored) == 1 + 11 + 11 + 2 * 11
    assert rows[1][0] == DENSE  # the baseline leads
    seen = set()
    for row in rows[1:]:
        values = dict(zip(CSV_FIELDS, row, strict=True))
        p = next(p for p in stored.values() if p.method == values["method"] and p.seed == int(values["seed"])
                 and p.target_sparsity == float(values["target_sparsity"]))
        seen.add(p.key)
        for name in CSV_FIELDS[1:]:
            if getattr(p, name) is None:  # savings not measured: an empty cell
                assert values[name] == "", name
                continue
            assert type(getattr(p, name))(values[name]) == getattr(p, name), name
    assert seen == set(stored)


def test_png_and_gif_are_valid_and_the_gif_has_a_frame_per_level(built):
    _, points, report = built
    with Image.open(report.files["plot_png"]) as png:
        png.verify()
    with Image.open(report.files["plot_png"]) as png:
        assert png.size[0] > 800
    levels = {p.target_sparsity for p in points if p.method != DENSE}
    with Image.open(report.files["gif"]) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == len(levels) == 11
        assert gif.size == (720, 360)  # 9 x 4.5 in at 80 dpi


# ---- Markdown ----


def test_markdown_leads_with_the_answers_of_analysis(built):
    _, points, report = built
    text = report.files["markdown"].read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# ") and "resnet8" in lines[0] and f"{N:,} test images" in lines[0]
    body = [ln for ln in lines[1:] if ln.strip()]
    assert body[0].startswith("| method |") and body[1].startswith("|---")
    dense, curves = split(points)
    for i, method in enumerate(["layerwise", "global", "random"]):
        expected = answer(dense, curves[method], 1.0, 300)
        assert report.answers[method] == expected
        row = body[2 + i]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == method
        assert cells[1] == f"{100 * expected.sparsity:.1f}%"
        assert cells[2] == f"{100 * expected.ci_low:.1f}% – {100 * expected.ci_high:.1f}%"
        assert cells[3] == f"{expected.top1:.1f}%" and cells[5] == f"{expected.drop:.1f}"
    # the curves were built so the methods differ: global keeps accuracy longest
    assert report.answers["global"].sparsity > report.answers["layerwise"].sparsity
    assert report.answers["layerwise"].sparsity > report.answers["random"].sparsity
    assert "300 paired bootstrap replicates" in text and f"{N:,} test images" in text


def test_markdown_embeds_the_files_and_states_the_facts(built):
    _, points, report = built
    text = report.files["markdown"].read_text()
    for key in ("plot_png", "gif", "csv"):
        assert f"]({report.files[key].name})" in text
    assert "`abababababab`" in text and "a" * 64 not in text  # hash shortened
    assert "prune_classifier: False" in text
    assert "computed, bitmask + nonzero values" in text
    for name in LAYERS:
        assert f"| `{name}` |" in text
    assert "±" in text  # random has two seeds
    dense = next(p for p in points if p.method == DENSE)
    assert f"{dense.dense_bytes:,} B" in text


def test_per_layer_table_gives_the_zeros_at_each_answer(built):
    _, points, report = built
    text = report.files["markdown"].read_text()
    a = report.answers["layerwise"]
    at = next(p for p in points if p.method == "layerwise" and p.target_sparsity == a.sparsity)
    name = "layer2.0.conv2.weight"
    row = next(ln for ln in text.splitlines() if ln.startswith(f"| `{name}` |"))
    zeros, size = at.layers[name]
    assert f"{100 * zeros / size:.1f}% ({zeros:,})" in row.split("|")[3]


# ---- store only, options, edge cases ----


def test_report_reads_only_the_store(tmp_path):
    run = tmp_path / "run"
    make_store(run, levels=(0.0, 0.5, 0.9))
    (run / "model").mkdir()
    (run / "model" / "model.safetensors").write_bytes(b"weights")
    for path in run.iterdir():
        if path.name != STORE_FILE:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert [p.name for p in run.iterdir()] == [STORE_FILE]
    out = tmp_path / "elsewhere" / "rep"
    report = write_report(run, n_boot=50, out=out, gif=False)
    assert report.folder == out and "gif" not in report.files
    assert not (out / "pruning.gif").exists()
    assert "pruning.gif" not in report.files["markdown"].read_text()
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(STORE_FILE + "-")) == [STORE_FILE]


def test_budget_changes_the_answer_monotonically(tmp_path):
    make_store(tmp_path)
    tight = write_report(tmp_path, budget=0.0, n_boot=0, gif=False).answers
    loose = write_report(tmp_path, budget=30.0, n_boot=0, gif=False).answers
    for method in tight:
        assert tight[method].sparsity <= loose[method].sparsity
        assert tight[method].ci_low == tight[method].ci_high == tight[method].sparsity  # no bootstrap


def test_only_the_dense_point_is_a_clear_error(tmp_path):
    make_store(tmp_path, methods={})
    with pytest.raises(PrunelabError, match="only the dense baseline"):
        write_report(tmp_path)


def test_missing_store_and_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(PrunelabError, match="no sweep results"):
        write_report(tmp_path / "nothing")
    make_store(tmp_path, levels=(0.5,))
    with pytest.raises(PrunelabError, match="bootstrap"):
        write_report(tmp_path, n_boot=-1)
    with pytest.raises(PrunelabError, match="budget"):
        write_report(tmp_path, budget=-1.0)


def test_one_level_and_uneven_grids(tmp_path):
    """A method swept at a single level and methods on different grids: one frame per level overall."""
    make_store(tmp_path, levels=(0.3,), methods={"global": (0.7, (0,))})
    store = Store.create(tmp_path, FINGERPRINT, {"methods": ["global", "layerwise"]})
    u = np.random.default_rng(0).random(N)
    for s in (0.2, 0.6):
        store.add(make_point("layerwise", s, 0, 0.5, u))
    store.close()
    report = write_report(tmp_path, n_boot=100)
    assert report.answers["global"].sparsity == 0.3
    with Image.open(report.files["gif"]) as gif:
        assert gif.n_frames == 3  # 20%, 30%, 60%
    table = report.files["markdown"].read_text().split("## Top-1 at every level")[1]
    assert "| 20.0% | – |" in table


def test_many_layers_long_names_are_shortened_uniquely():
    names = [f"features.denseblock{b}.denselayer{i}.conv{c}.weight"
             for b in (1, 2) for i in range(1, 13) for c in (1, 2)]
    short = [_short(n) for n in names]
    assert all(len(s) <= 22 for s in short)
    assert len(set(short)) == len(names)
    assert _short("layer1.0.conv1.weight") == "layer1.0.conv1"
    assert _short("fc.weight") == "fc"


def test_import_does_no_work_and_loads_no_plotting():
    code = "import sys, prunelab.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
