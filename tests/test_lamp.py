"""LAMP (Lee et al. 2021), added as one file (`pruning/methods/lamp.py`): its scores, and every part
of prunelab picking it up through the registry."""

import pytest
import torch
from cli_helpers import run
from pruning_helpers import masks_of

from prunelab.pruning import CRITERIA, PRUNERS
from prunelab.pruning.methods.lamp import lamp


def brute_force(w: torch.Tensor) -> torch.Tensor:
    """The definition: w_u^2 / sum of w_v^2 over the weights v of the layer with |w_v| >= |w_u|."""
    flat = w.reshape(-1).double()
    return torch.stack([flat[u] ** 2 / (flat[flat.abs() >= flat[u].abs()] ** 2).sum()
                        for u in range(len(flat))]).view(w.shape).float()


def test_scores_follow_the_definition_ties_included():
    w = torch.tensor([[3.0, -1.0, 2.0], [2.0, 0.5, -2.0]])  # three weights tie at |w| = 2
    assert torch.allclose(lamp(w, None), brute_force(w))
    r = torch.randn(5, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(lamp(r, None), brute_force(r), rtol=1e-5)
    assert lamp(r, None).max() == 1  # every layer's largest weight scores 1
    assert CRITERIA.get("lamp").score is lamp


def test_one_threshold_on_lamp_keeps_small_layers_alive_where_magnitude_empties_them():
    g = torch.Generator().manual_seed(0)
    weights = {"small": 0.01 * torch.randn(64, generator=g), "large": torch.randn(4096, generator=g)}
    assert not masks_of("global", weights, 0.9)["small"].any()  # all of a low-magnitude layer goes
    masks = masks_of("lamp", weights, 0.9)
    assert masks["small"].any() and masks["large"].any()
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.9 * (64 + 4096))  # exact count


def test_the_sweep_the_report_the_export_and_the_listing_take_lamp(digits_checkpoint, tmp_path, monkeypatch,
                                                                    capsys):
    code, stdout, err = run(monkeypatch, capsys, "methods")
    assert code == 0 and "lamp " in stdout and "Lee et al. 2021" in " ".join(stdout.split())  # as wrapped
    code, stdout, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "lamp,lamp+ft",
                            "--levels", "0.5,0.9", "--epochs", 1, "--out", tmp_path / "run", "--no-report")
    assert code == 0 and "lamp+ft" in stdout, err
    code, stdout, err = run(monkeypatch, capsys, "report", tmp_path / "run", "--no-gif")
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert code == 0 and "lamp " in stdout and "| lamp |" in report
    code, stdout, err = run(monkeypatch, capsys, "export", tmp_path / "run", "--method", "lamp+ft", "--level",
                            0.9, "--format", "sparse", "--out", tmp_path / "l.sparse")
    assert code == 0 and "bit-exact" in stdout, err
    assert PRUNERS.get("lamp").description.startswith("lowest LAMP score")


@pytest.mark.parametrize("level", [0.0, 0.3, 0.97, 1.0])
def test_exact_counts_at_every_level(level):
    torch.manual_seed(0)
    weights = {"a": torch.randn(8, 4, 3, 3), "b": torch.randn(10, 32)}
    masks = masks_of("lamp", weights, level)
    assert sum(int((~m).sum()) for m in masks.values()) == round(level * (288 + 320))
