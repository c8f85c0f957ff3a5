"""Wanda: every weight scored |w| x the RMS of the input it multiplies on calibration images, checked
against scores computed here by hand; the exact count per level; and a swept point rebuilt from its
run (no file is kept: the checkpoint is pruned again on the sweep's own calibration draw)."""

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import assert_user_error, run
from torch import nn

from prunelab.data import normalize
from prunelab.errors import PrunelabError
from prunelab.experiment.store import Store
from prunelab.io.formats.sparse import load_sparse
from prunelab.measure import evaluate
from prunelab.models.module import card_for_module
from prunelab.pruning import PRUNERS, PruneContext
from prunelab.pruning.calibration import Calibration
from prunelab.pruning.masks import lowest_k_mask, n_pruned


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.hidden = nn.Linear(6 * 16, 20)
        self.fc = nn.Linear(20, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(F.relu(self.hidden(x.flatten(1))))


CARD = card_for_module(Net(), (3, 8, 8))


def by_hand(model: Net, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """|w| x sqrt(mean of x_j^2 over every input row), from inputs captured on a forward."""
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda m, a, name=name: seen.__setitem__(name, a[0]))
             for name, m in (("conv", model.conv), ("hidden", model.hidden))]
    model(images)
    for h in hooks:
        h.remove()
    cols = F.unfold(seen["conv"], 3, padding=1).transpose(1, 2).reshape(-1, 27)  # (rows, C*kh*kw)
    rms_conv = cols.pow(2).mean(0).sqrt().view(3, 3, 3)
    rms_hidden = seen["hidden"].pow(2).mean(0).sqrt()
    return {"conv.weight": model.conv.weight.abs() * rms_conv,
            "hidden.weight": model.hidden.weight.abs() * rms_hidden}


@pytest.mark.parametrize("level", [0.3, 0.75])
def test_wanda_drops_the_lowest_weight_times_input_rms_in_every_layer(level):
    torch.manual_seed(0)
    model = Net().eval()
    images = torch.randn(40, 3, 8, 8) * torch.tensor([0.1, 1.0, 5.0]).view(1, 3, 1, 1)  # unequal inputs
    with torch.no_grad():
        scores = by_hand(model, images)
        expected = {k: lowest_k_mask(s, n_pruned(level, s.numel())) for k, s in scores.items()}
        plain = {k: lowest_k_mask(w.abs(), n_pruned(level, w.numel()))
                 for k, w in (("conv.weight", model.conv.weight), ("hidden.weight", model.hidden.weight))}
    ctx = PruneContext(CARD, calibration=lambda: Calibration(images))
    pruned = PRUNERS.get("wanda").prune(model, level, ctx)
    assert set(pruned.masks) == set(expected)
    for name, mask in pruned.masks.items():
        assert torch.equal(mask, expected[name]), name
        assert int((~mask).sum()) == n_pruned(level, mask.numel())
    assert any(not torch.equal(pruned.masks[k], plain[k]) for k in plain)  # the inputs changed the choice
    assert float(model.conv.weight.detach()[~pruned.masks["conv.weight"]].abs().sum()) == 0


def test_wanda_global_prunes_the_exact_total_and_needs_calibration():
    model = Net().eval()
    pruned = PRUNERS.get("wanda-global").prune(model, 0.6, PruneContext(CARD, calibration=lambda: Calibration(
        torch.randn(40, 3, 8, 8))))
    total = sum(m.numel() for m in pruned.masks.values())
    assert sum(int((~m).sum()) for m in pruned.masks.values()) == n_pruned(0.6, total)
    with pytest.raises(PrunelabError, match="needs calibration images"):
        PRUNERS.get("wanda").prune(Net(), 0.5, PruneContext(CARD))


def test_a_swept_wanda_point_exports_from_its_run_to_the_network_it_measured(digits, digits_checkpoint,
                                                                              monkeypatch, capsys, tmp_path):
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "wanda,layerwise",
                       "--levels", "0.6", "--calibration", 64, "--out", tmp_path / "run", "--no-report")
    assert code == 0, err
    code, stdout, err = run(monkeypatch, capsys, "export", tmp_path / "run", "--method", "wanda", "--level",
                            0.6, "--format", "sparse", "--out", tmp_path / "m")
    assert code == 0 and "bit-exact" in stdout, err
    store = Store.open(tmp_path / "run")
    points = {p.method: p for p in store.points()}
    store.close()
    assert abs(points["wanda"].sparsity - points["layerwise"].sparsity) < 1e-9  # the same count per layer
    exported = load_sparse(tmp_path / "m")[0]
    x = normalize(digits.test.x, (0.5,), (0.5,))
    assert evaluate(exported, x, digits.test.y).correct == points["wanda"].correct


def test_wanda_with_too_few_calibration_images_is_one_line(digits_checkpoint, monkeypatch, capsys, tmp_path):
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "wanda", "--levels",
                       "0.5", "--calibration", 4, "--out", tmp_path / "run", "--no-report")
    assert_user_error(code, err, "--calibration")
