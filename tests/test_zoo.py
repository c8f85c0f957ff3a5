"""Shipped networks: bench/cpu/ship.py writes fp16 shards and records counts measured on exactly
them; every network in zoo/ re-evaluates to the counts its card records."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import SHARED

from prunelab.io.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ZOO = sorted(p.parent for p in (ROOT / "zoo").glob("*/model.json"))


def ship_module():
    spec = importlib.util.spec_from_file_location("ship", ROOT / "bench" / "cpu" / "ship.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipping_writes_fp16_shards_and_records_counts_measured_on_them(digits_checkpoint, tmp_path):
    ship = ship_module()
    counts = ship.ship(digits_checkpoint, tmp_path / "zoo", ["digits"])
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == [
        "model-00001-of-00001.safetensors", "model.json", "model.safetensors.index.json"]
    model, card = load_checkpoint(tmp_path / "zoo")
    original, _ = load_checkpoint(digits_checkpoint)
    for (name, a), b in zip(model.state_dict().items(), original.state_dict().values(), strict=True):
        if a.is_floating_point():  # stored as fp16: the fp32 weights rounded once
            assert torch.equal(a, b.half().float()), name
    assert card.training["shipped"] == counts == ship.measure(tmp_path / "zoo", ["digits"])
    assert counts["digits"]["images"] == 360


@pytest.mark.slow
@pytest.mark.parametrize("folder", ZOO, ids=[p.name for p in ZOO])
def test_a_shipped_network_scores_the_counts_its_card_records(folder):
    card = json.loads((folder / "model.json").read_text())
    shipped = card["training"]["shipped"]
    exact = "cifar10_subset.npz"  # the byte-exact test images (minutes for the 10,000 JPEGs)
    data = SHARED / "data" / "cifar10" / exact
    if exact not in shipped or not data.exists():
        pytest.skip(f"{exact} not recorded or not in ../shared")
    assert ship_module().measure(folder, [str(data)])[exact] == shipped[exact]
