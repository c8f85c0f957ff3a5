"""Depth pruning: which residual blocks can go, that a removed block is exactly the identity, the
choice of blocks for a level, and that the smaller network rebuilds from its spec."""

import pytest
import torch
from cli_helpers import assert_user_error, run
from pruning_helpers import varied_resnet20
from torch import nn

from prunelab.data import normalize
from prunelab.errors import PrunelabError
from prunelab.experiment.store import Store
from prunelab.io.checkpoint import save_checkpoint
from prunelab.io.formats.structured import load_structured
from prunelab.measure import evaluate
from prunelab.models import ModelCard, create_model, model_info
from prunelab.pruning import PRUNERS, PruneContext
from prunelab.pruning.calibration import Calibration
from prunelab.pruning.methods.blocks import choose_blocks, removable_blocks, removal_costs
from prunelab.pruning.spec import architecture_spec, build_from_spec
from prunelab.training import TrainConfig, fit

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
IMAGES = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
CARD = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.5,) * 3)


@pytest.fixture(scope="module")
def resnet20():
    return varied_resnet20()


def test_only_blocks_with_an_identity_shortcut_can_go(resnet20):
    # stage 1's first block keeps the stem's 16 channels at stride 1: it can go too
    assert removable_blocks(resnet20) == [f"layer{s}.{i}" for s, i in ((1, 0), (1, 1), (1, 2), (2, 1), (2, 2),
                                                                    (3, 1), (3, 2))]
    assert removable_blocks(create_model("smallcnn", 10, 1)) == []


def test_a_block_whose_branch_gives_zero_costs_nothing_to_remove(resnet20):
    import copy

    model = copy.deepcopy(resnet20)
    with torch.no_grad():  # the branch of layer2.1 ends in a batch norm that outputs 0
        model.layer2[1].bn2.weight.zero_(), model.layer2[1].bn2.bias.zero_()
    costs = removal_costs(model, removable_blocks(model), IMAGES, batch_size=16)
    assert costs["layer2.1"] < 1e-9  # relu(0 + x) = x: the identity is exact
    assert min(v for k, v in costs.items() if k != "layer2.1") > 1e-6
    assert torch.equal(model.layer2[1].bn2.weight, torch.zeros(32))  # read only


def test_blocks_are_chosen_cheapest_first_to_the_nearest_whole_block():
    costs, weights = {"a": 0.3, "b": 0.1, "c": 0.2}, {"a": 60, "b": 10, "c": 30}
    assert choose_blocks(costs, weights, 200, 0, 0.2) == ["b", "c"]  # 40 of 200
    assert choose_blocks(costs, weights, 200, 0, 0.01) == []  # 0 is nearer than 10 of 200
    assert choose_blocks(costs, weights, 200, 0, 1.0) == ["b", "c", "a"]
    assert choose_blocks(costs, weights, 200, 100, 0.55) == ["b"]  # 100 gone already: 110 of 200


def test_the_pruned_network_is_smaller_runs_and_rebuilds_from_its_spec(resnet20):
    ctx = PruneContext(CARD, X, calibration=lambda: Calibration(IMAGES, batch_size=16))
    pruner = PRUNERS.get("blocks")
    result = pruner.prune(resnet20, 0.3, ctx)
    r = result.structured
    gone = [b for b in removable_blocks(resnet20) if isinstance(r.model.get_submodule(b), nn.Identity)]
    assert gone and abs(r.achieved - 0.3) < 0.15
    removed = sum(k for k, _ in r.layers.values())
    assert removed == sum(p.numel() for b in gone for n, p in resnet20.get_submodule(b).named_parameters()
                          if n.endswith("conv1.weight") or n.endswith("conv2.weight"))
    spec = architecture_spec(r.model, model_info("resnet20"))
    rebuilt = build_from_spec(spec)
    rebuilt.load_state_dict(r.model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(X), r.model(X))
    assert sum(p.numel() for p in resnet20.parameters()) > sum(p.numel() for p in r.model.parameters())
    none = pruner.prune(resnet20, 0.0, ctx).structured
    assert none.achieved == 0
    with torch.no_grad():
        assert torch.equal(none.model(X), resnet20(X))


def test_a_network_without_residual_blocks_is_refused_in_one_line():
    ctx = PruneContext(ModelCard("smallcnn", 10, 1, (0.5,), (0.5,), input_size=8))
    with pytest.raises(PrunelabError, match="has none prunelab knows"):
        PRUNERS.get("blocks").check_model(create_model("smallcnn", 10, 1), ctx)


def test_a_sweep_of_blocks_on_a_network_without_them_exits_2(digits_checkpoint, tmp_path, monkeypatch,
                                                              capsys):
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "blocks",
                       "--levels", 0.5, "--out", tmp_path / "r", "--no-report")
    assert_user_error(code, err, "has none prunelab knows", "use a channel method")


@pytest.mark.slow  # five short trainings of a ResNet-20: ~40 s on 2 cores
def test_a_chain_of_block_removals_exports_the_network_its_sweep_measured(digits, monkeypatch, capsys,
                                                                          tmp_path):
    """blocks+iter on a ResNet-20 trained briefly on the digits: the export from the checkpoint
    holds the network the sweep measured (the second round removes blocks from the first's)."""
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1)
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=64)
    history = fit(model, digits, (0.5,), (0.5,), cfg, torch.device("cpu"))
    card = ModelCard("resnet20", 10, 1, (0.5,), (0.5,), classes=digits.classes, data="digits", epochs=1,
                     top1=history.test_top1, input_size=8)
    save_checkpoint(tmp_path / "ck", model, card)
    options = ("--levels", "0.2,0.4", "--epochs", 1, "--calibration", 64)
    code, stdout, err = run(monkeypatch, capsys, "export", "--checkpoint", tmp_path / "ck", "--method",
                            "blocks+iter", "--level", 0.4, "--format", "structured",
                            "--out", tmp_path / "m", *options)
    assert code == 0 and "bit-exact" in stdout, err
    code, _, err = run(monkeypatch, capsys, "sweep", tmp_path / "ck", "--methods", "blocks+iter",
                       "--out", tmp_path / "run", "--no-report", *options)
    assert code == 0, err
    exported = load_structured(tmp_path / "m")[0]
    assert any(isinstance(exported.get_submodule(b), nn.Identity) for b in removable_blocks(model))
    store = Store.open(tmp_path / "run")
    chain = {p.target_sparsity: p for p in store.points() if p.method == "blocks+iter"}
    store.close()
    point = chain[0.4]
    assert 0 < chain[0.2].sparsity <= point.sparsity
    x = normalize(digits.test.x, (0.5,), (0.5,))
    assert evaluate(exported, x, digits.test.y).correct == point.correct


def test_a_swept_block_point_exports_from_its_run_with_the_sweeps_calibration(digits, monkeypatch, capsys,
                                                                               tmp_path):
    """blocks reads calibration images and keeps no file: the export from the run prunes the
    checkpoint again in the sweep's own context (its draw of images), to the network it measured."""
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1).eval()
    card = ModelCard("resnet20", 10, 1, (0.5,), (0.5,), classes=digits.classes, data="digits", input_size=8)
    save_checkpoint(tmp_path / "ck", model, card)
    code, _, err = run(monkeypatch, capsys, "sweep", tmp_path / "ck", "--methods", "blocks", "--levels",
                       "0.3", "--calibration", 48, "--calibration-seed", 3, "--out", tmp_path / "run",
                       "--no-report")
    assert code == 0, err
    code, stdout, err = run(monkeypatch, capsys, "export", tmp_path / "run", "--method", "blocks", "--level",
                            0.3, "--format", "structured", "--out", tmp_path / "m")
    assert code == 0 and "bit-exact" in stdout, err
    store = Store.open(tmp_path / "run")
    point = next(p for p in store.points() if p.method == "blocks")
    store.close()
    exported = load_structured(tmp_path / "m")[0]
    assert point.sparsity > 0
    x = normalize(digits.test.x, (0.5,), (0.5,))
    assert evaluate(exported, x, digits.test.y).correct == point.correct
