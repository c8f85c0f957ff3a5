"""Exact OBS row by row (`obc-*`): the closed form on a case solved by hand, optimal kept weights for
its mask, exact counts, masks that only grow, less output error than SparseGPT, and a point that
runs through a sweep and keeps its model."""

import itertools

import numpy as np
import pytest
import torch
from pruning_helpers import inputs

from prunelab.data import load_dataset, normalize
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.rebuild import point_model
from prunelab.experiment.sweep import Sweep
from prunelab.measure import evaluate
from prunelab.pruning.obs import exact_obs, inverse_factor, sparsegpt


def error(w, new, h):
    return float(((w - new) @ h @ (w - new).T).trace())


def test_pruning_one_weight_of_three_is_the_best_of_the_three_closed_forms():
    x = inputs(d=3)
    h = x.T @ x / len(x)
    w = torch.tensor([[0.3, -1.0, 0.2]], dtype=torch.float64)
    new, keep = exact_obs(w, inverse_factor(h, 1e-12, "l"), prune=1, group=1)
    hinv = torch.linalg.inv(h)
    candidates = [w[0] - w[0, q] / hinv[q, q] * hinv[:, q] for q in range(3)]  # Hassibi & Stork
    best = min(range(3), key=lambda q: error(w, candidates[q][None], h))
    assert keep[0].tolist() == [q != best for q in range(3)]
    assert torch.allclose(new[0], candidates[best], atol=1e-9)


@pytest.mark.parametrize("group", [1, 3, 16])
def test_kept_weights_are_optimal_for_the_mask_and_counts_are_exact(group):
    x = inputs(d=12)
    h = x.T @ x / len(x)
    w = torch.randn(5, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    new, keep = exact_obs(w, inverse_factor(h, 1e-12, "l"), prune=37, group=group)
    assert int((~keep).sum()) == 37 and int((new == 0).sum()) == 37  # the one definition, exactly
    gradient = (new - w) @ h  # of the output error: zero on every kept weight at the optimum
    assert torch.allclose(gradient[keep], torch.zeros(int(keep.sum()), dtype=torch.float64), atol=1e-8)


def test_the_best_mask_of_a_tiny_row_is_found():
    """Two of four weights, dropped one at a time: the mask found is the best of all six pairs."""
    x = inputs(d=4, seed=3)
    h = x.T @ x / len(x)
    w = torch.tensor([[0.5, -0.4, 0.9, 0.1]], dtype=torch.float64)
    new, _ = exact_obs(w, inverse_factor(h, 1e-12, "l"), prune=2, group=1)
    hinv = torch.linalg.inv(h)

    def solved(p):
        p = list(p)
        return w[0] - hinv[:, p] @ torch.linalg.solve(hinv[p][:, p], w[0, p])

    best = min(error(w, solved(p)[None], h) for p in itertools.combinations(range(4), 2))
    assert error(w, new, h) == pytest.approx(best, rel=1e-9)


def test_prior_masks_only_grow_and_dead_inputs_go_first():
    x = inputs(d=16)
    x[:, 5] = 0.0  # an input that is always zero
    h = x.T @ x / len(x)
    w = torch.randn(6, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    prior = torch.rand(6, 16, generator=torch.Generator().manual_seed(3)) > 0.3
    _, keep = exact_obs(w, inverse_factor(h, 0.01, "l"), prune=60, prior=prior, dead=torch.diag(h) == 0)
    assert not (keep & ~prior).any() and int((~keep).sum()) == 60
    assert not keep[:, 5].any()


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_exact_leaves_less_output_error_than_sparsegpt(sparsity):
    x = inputs(d=32, n=2000)
    h = x.T @ x / len(x)
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    k = round(sparsity * w.numel())
    u = inverse_factor(h, 0.01, "l")
    exact, _ = exact_obs(w, u, prune=k)
    approx, _ = sparsegpt(w, u, prune=k, block=8)
    assert error(w, exact, h) < 0.9 * error(w, approx, h)


@pytest.mark.slow  # a sweep of two second-order methods: ~20 s
def test_an_obc_point_runs_in_a_sweep_and_keeps_the_model_it_measured(digits_checkpoint, tmp_path):
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), data="digits", device="cpu", levels=(0.8,),
                      methods=("obs-global", "obc-global"), calibration=256)
    sweep = Sweep(cfg, tmp_path)
    points = {p.method: p for p in sweep.run()}
    sweep.store.close()
    p = points["obc-global"]
    assert p.prunable_params - p.nonzero_params == round(0.8 * p.prunable_params)
    assert p.correct >= points["obs-global"].correct - 2
    pruned, card, _ = point_model(tmp_path, "obc-global", 0.8)  # the kept model, not a re-pruned one
    test = load_dataset("digits").test
    hits = evaluate(pruned.model, normalize(test.x, card.mean, card.std), test.y).hits
    assert np.array_equal(hits, p.hits)
