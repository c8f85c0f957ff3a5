"""Latency tables and the allocation that prices channels by them: what a table holds, that the
allocation buys the channels that save the most time per importance given up, and the refusals."""

import dataclasses
import json
import sys

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, run

from prunelab.cli import main
from prunelab.measure.latency_table import LayerGrid, load_table, measure_table, save_table
from prunelab.models import create_model, model_info
from prunelab.pruning import GROUP_CRITERIA
from prunelab.pruning.methods.channels import threshold_counts
from prunelab.pruning.methods.channels_latency import latency_counts
from prunelab.pruning.structured import ChannelGroup, prune_channels

X = torch.zeros(1, 1, 8, 8)


@pytest.fixture(scope="module")
def smallcnn_table():
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, 1).eval()
    info = model_info("smallcnn")
    return model, measure_table(model, "smallcnn", (1, 8, 8), info.stem, info.classifier, "torch", 1,
                                repeats=3)


def test_a_table_prices_every_layer_on_the_sides_pruning_can_change(smallcnn_table, tmp_path):
    model, table = smallcnn_table
    assert set(table.layers) == {"conv1", "conv2", "conv3", "fc"}
    assert table.layers["conv2"][0] == (32, 64) and table.runtime == "torch" and table.versions["torch"]
    (_, stem), (_, fc) = table.layers["conv1"], table.layers["fc"]
    assert stem.ins == (1,) and len(stem.outs) == 8 and stem.outs[-1] == 32  # the image's channel stays
    assert fc.outs == (10,) and fc.ins[-1] == 128  # the classes stay
    assert all(s > 0 for row in table.layers["conv3"][1].seconds for s in row)
    save_table(tmp_path / "t.json", table)
    assert load_table(tmp_path / "t.json") == table


def test_the_grid_interpolates_between_and_holds_at_its_ends():
    grid = LayerGrid((4, 8), (2, 4), ((1.0, 2.0), (3.0, 4.0)))
    assert grid.at(8, 4) == 4.0 and grid.at(6, 3) == pytest.approx(2.5) and grid.at(100, 1) == 3.0


def _groups(seconds_per_channel, channels=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [ChannelGroup(f"g{i}", channels, torch.rand(channels, generator=g) + 0.5, [],
                   saved=np.arange(channels + 1) * s) for i, s in enumerate(seconds_per_channel)]


def test_with_equal_prices_the_latency_allocation_is_the_global_threshold():
    groups = _groups([1e-5, 1e-5, 1e-5])
    caps = [31, 31, 31]
    for ratio in (0.1, 0.3, 0.6):
        assert latency_counts(groups, ratio, caps) == threshold_counts(groups, ratio, caps)


def test_channels_that_save_more_time_go_first_counts_grow_with_the_ratio_and_caps_hold():
    groups = _groups([1e-4, 1e-5, 1e-5])
    caps = [20, 31, 31]
    even = threshold_counts(groups, 0.25, caps)
    priced = latency_counts(groups, 0.25, caps)
    assert sum(priced) == sum(even) == 24 and priced[0] > even[0] and priced[0] > max(priced[1:])
    previous = [0, 0, 0]
    for ratio in np.linspace(0, 1, 21):
        counts = latency_counts(groups, ratio, caps)
        assert all(c <= cap for c, cap in zip(counts, caps, strict=True))
        assert all(c >= p for c, p in zip(counts, previous, strict=True))
        previous = counts
    assert previous == caps


def _priced_by_macs(table, slow: str = "", factor: float = 1.0):
    """`table` with every layer's time made proportional to inputs x outputs (`slow`'s x `factor`)."""
    layers = {}
    for name, (widths, grid) in table.layers.items():
        k = 1e-9 * (factor if name == slow else 1.0)
        layers[name] = (widths, dataclasses.replace(
            grid, seconds=tuple(tuple(k * i * o for o in grid.outs) for i in grid.ins)))
    return dataclasses.replace(table, layers=layers)


def test_the_latency_method_cuts_more_of_the_layer_the_table_says_is_slow(smallcnn_table):
    model, table = smallcnn_table
    info, l1 = model_info("smallcnn"), GROUP_CRITERIA.get("group-l1").score
    kept = {}
    for name, t in (("macs", _priced_by_macs(table)), ("slow conv1", _priced_by_macs(table, "conv1", 100))):
        r = prune_channels(model, info, X, 0.2, "latency", importance=l1, keep_stream=True, latency_table=t)
        assert r.within_tolerance
        kept[name] = r.channels["conv1"][0]  # conv1's own channels change only its time and conv2's
    assert kept["slow conv1"] < kept["macs"]


@pytest.fixture(scope="module")
def digits_table(digits_checkpoint, tmp_path_factory):
    """The digits checkpoint's table, written by the command itself (eager torch: fast)."""
    path = tmp_path_factory.mktemp("table") / "smallcnn.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["prunelab", "latency-table", str(digits_checkpoint), "--runtime", "torch",
                                 "--out", str(path)])
        with pytest.raises(SystemExit) as exc:
            main()
            raise SystemExit(0)
    assert exc.value.code == 0
    return path


def test_a_sweep_allocates_by_the_table_keeps_a_copy_and_exports_the_point(digits_checkpoint, digits_table,
                                                                          tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, said, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods",
                          "channels-latency,channels-rec-latency", "--levels", "0.3", "--latency-table",
                          digits_table, "--no-report", "--out", out)
    assert code == 0, err
    assert json.loads((out / "latency-table.json").read_text()) == json.loads(digits_table.read_text())
    code, said, err = run(monkeypatch, capsys, "export", out, "--method", "channels-latency", "--level", 0.3,
                          "--format", "structured", "--out", tmp_path / "m.safetensors")
    assert code == 0, err
    assert "bit-exact" in said


def test_a_latency_method_without_a_table_or_with_a_wrong_one_is_one_line(
        digits_checkpoint, digits_table, tmp_path, monkeypatch, capsys):
    base = ["sweep", digits_checkpoint, "--methods", "channels-latency", "--levels", "0.3", "--no-report"]
    code, _, err = run(monkeypatch, capsys, *base, "--out", tmp_path / "a")
    assert_user_error(code, err, "--latency-table", "prunelab latency-table")
    code, _, err = run(monkeypatch, capsys, *base, "--latency-table", digits_table, "--latency",
                       "--runtime", "onnxruntime", "--out", tmp_path / "b")
    assert_user_error(code, err, "measured in torch", "--runtime torch")
    code, _, err = run(monkeypatch, capsys, *base, "--latency-table", digits_table, "--latency",
                       "--threads", "2", "--runtime", "torch", "--out", tmp_path / "c")
    assert_user_error(code, err, "1 thread", "--threads 1")
    other = json.loads(digits_table.read_text())
    (tmp_path / "r20.json").write_text(json.dumps({**other, "model": "resnet20"}))
    code, _, err = run(monkeypatch, capsys, *base, "--latency-table", tmp_path / "r20.json", "--out",
                       tmp_path / "d")
    assert_user_error(code, err, "measured for resnet20, not smallcnn")
    other["layers"]["conv2"]["in"] = 16
    (tmp_path / "wide.json").write_text(json.dumps(other))
    code, _, err = run(monkeypatch, capsys, *base, "--latency-table", tmp_path / "wide.json", "--out",
                       tmp_path / "e")
    assert_user_error(code, err, "layer 'conv2'", "another network")
    for name, text in (("cut.json", digits_table.read_text()[:50]), ("list.json", "[1, 2]"),
                       ("bad.json", json.dumps({**other, "layers": {"conv2": {"in": 1}}}))):
        (tmp_path / name).write_text(text)
        code, _, err = run(monkeypatch, capsys, *base, "--latency-table", tmp_path / name, "--out",
                           tmp_path / "f")
        assert_user_error(code, err, name)
    code, _, err = run(monkeypatch, capsys, *base, "--latency-table", tmp_path / "none.json", "--out",
                       tmp_path / "g")
    assert_user_error(code, err, "none.json", "prunelab latency-table")
