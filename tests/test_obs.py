"""Second-order one-shot pruning (obs): the solver against closed forms and magnitude, exact counts
and patterns, calibration from the training split only, kept models, one-line errors."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, run
from pruning_helpers import inputs
from torch import nn

from prunelab.data import load_dataset
from prunelab.data.calibration import calibration_images
from prunelab.errors import PrunelabError
from prunelab.experiment.config import SweepConfig
from prunelab.experiment.rebuild import point_model
from prunelab.experiment.sweep import Sweep
from prunelab.measure import evaluate
from prunelab.pruning.calibration import Calibration
from prunelab.pruning.obs import as_columns, corrected, from_columns, inverse_factor, patches, sparsegpt


def output_error(w, w_new, x):
    return float(((x @ (w - w_new).T) ** 2).sum())


def test_one_weight_pruned_first_is_the_closed_form_of_optimal_brain_surgeon():
    """Pruning w_0 of one row: the update is -w_0 / [H^-1]_00 * H^-1[:, 0] (Hassibi & Stork 1993)."""
    x = inputs(d=2)
    h = x.T @ x / len(x)
    w = torch.tensor([[0.01, 1.0]], dtype=torch.float64)
    new, keep = sparsegpt(w, inverse_factor(h, 1e-12, "l"), prune=1)
    hinv = torch.linalg.inv(h)
    expected = w[0] - w[0, 0] / hinv[0, 0] * hinv[:, 0]
    assert keep.tolist() == [[False, True]]
    assert torch.allclose(new[0], expected, atol=1e-9)


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.75])
def test_obs_keeps_the_layer_output_closer_than_magnitude_and_counts_exactly(sparsity):
    x = inputs(d=16)
    h = x.T @ x / len(x)
    w = torch.randn(12, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k = round(sparsity * w.numel())
    new, keep = sparsegpt(w, inverse_factor(h, 0.01, "l"), prune=k, block=4)
    assert int((~keep).sum()) == k and int((new == 0).sum()) == k  # the one definition, exactly
    magnitude = w.clone().reshape(-1)
    magnitude[torch.topk(w.abs().reshape(-1), k, largest=False).indices] = 0
    assert output_error(w, new, x) < 0.8 * output_error(w, magnitude.view_as(w), x)


def test_nm_patterns_and_prior_masks_hold_exactly():
    x = inputs(d=16)
    u = inverse_factor(x.T @ x / len(x), 0.01, "l")
    w = torch.randn(6, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, keep = sparsegpt(w, u, nm=(2, 4), block=8)
    assert (keep.view(6, 4, 4).sum(-1) == 2).all()  # 2 of every 4 consecutive inputs, every row
    prior = torch.rand(6, 16, generator=torch.Generator().manual_seed(3)) > 0.3
    _, grown = sparsegpt(w, u, prune=60, prior=prior)
    assert not (grown & ~prior).any() and int((~grown).sum()) == 60  # masks only grow


def test_conv_columns_put_input_channels_innermost_and_match_unfold():
    conv = nn.Conv2d(4, 3, 3, padding=1, bias=False)
    x = torch.randn(2, 4, 5, 5)
    rows = patches(conv, x)  # (positions, kh * kw * in)
    out = rows @ as_columns(conv.weight.detach()).T
    assert torch.allclose(out, conv(x).permute(0, 2, 3, 1).reshape(-1, 3), atol=1e-5)
    assert torch.equal(from_columns(as_columns(conv.weight), conv.weight.shape), conv.weight)


def test_calibration_comes_from_the_training_split_seeded_and_checked(digits):
    a = calibration_images(digits.train, 64, seed=0)
    assert torch.equal(a, calibration_images(digits.train, 64, seed=0))
    assert not torch.equal(a, calibration_images(digits.train, 64, seed=1))
    train = {bytes(img.numpy()) for img in digits.train.x}
    assert all(bytes(img.numpy()) in train for img in a)  # never a test image
    for bad in (0, -5, len(digits.train) + 1, 2.5):
        with pytest.raises(PrunelabError, match="--calibration"):
            calibration_images(digits.train, bad)


def test_hessians_are_gathered_once_per_network_state():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    cal = Calibration(torch.randn(20, 3, 8, 8), batch_size=7)
    first = cal.hessians(net, ["0.weight", "3.weight"])
    assert first["0.weight"].shape == (27, 27) and first["3.weight"].shape == (144, 144)
    calls = []
    net[0].register_forward_hook(lambda *a: calls.append(1))
    assert cal.hessians(net, ["0.weight"])["0.weight"] is first["0.weight"] and not calls  # cached
    with torch.no_grad():
        net[0].weight.mul_(0.5)
    assert not torch.equal(cal.hessians(net, ["3.weight"])["3.weight"], first["3.weight"])  # a new net


@pytest.fixture(scope="module")
def obs_run(digits_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("obs")
    cfg = SweepConfig(checkpoint=str(digits_checkpoint), data="digits", device="cpu", levels=(0.5, 0.8),
                      methods=("layerwise", "global", "obs", "obs-global", "obs-global+bn", "obs-2:4"),
                      calibration=256)
    sweep = Sweep(cfg, out)
    points = {(p.method, p.target_sparsity): p for p in sweep.run()}
    sweep.store.close()
    return out, points, cfg


def test_obs_points_count_exactly_beat_magnitude_and_keep_the_model_they_measured(obs_run):
    out, points, _ = obs_run
    for (method, _), p in points.items():
        if method != "dense":
            assert p.prunable_params - p.nonzero_params == round(p.sparsity * p.prunable_params)
    for magnitude, second_order in (("layerwise", "obs"), ("global", "obs-global")):  # same counts per layer
        assert points[second_order, 0.8].correct > points[magnitude, 0.8].correct
    assert points["obs-global", 0.8].correct > 1.3 * points["global", 0.8].correct
    assert 0.45 < points["obs-2:4", 0.5].sparsity < 0.5  # 2:4 everywhere but the dense stem
    test = load_dataset("digits").test
    from prunelab.data import normalize

    for method, level in (("obs", 0.8), ("obs-global+bn", 0.5), ("obs-2:4", 0.5)):
        pruned, card, _ = point_model(out, method, level)  # the kept model, not a re-pruned one
        hits = evaluate(pruned.model, normalize(test.x, card.mean, card.std), test.y).hits
        assert np.array_equal(hits, points[method, level].hits), method


def test_obs_is_deterministic_and_iterates(digits_checkpoint, obs_run, tmp_path):
    _, points, cfg = obs_run
    again = Sweep(dataclasses.replace(cfg, methods=("obs",)), tmp_path / "again")
    assert np.array_equal(again.point("obs", 0.8, 0).hits, points["obs", 0.8].hits)
    again.store.close()
    chained = Sweep(dataclasses.replace(cfg, methods=("obs+iter",), levels=(0.5, 0.7)), tmp_path / "chain")
    chain = {p.target_sparsity: p for p in chained.run() if p.method == "obs+iter"}
    assert chain[0.7].prunable_params - chain[0.7].nonzero_params == round(0.7 * chain[0.7].prunable_params)


def test_bad_calibration_settings_are_one_line(digits_checkpoint, monkeypatch, capsys, tmp_path):
    for option, value, needle in (("--calibration", 0, "positive"), ("--calibration", 99999, "more images"),
                                  ("--damp", 0, "--damp > 0")):
        code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "obs", "--levels",
                           0.5, option, value, "--out", tmp_path / f"r{value}", "--no-report")
        assert_user_error(code, err, needle)
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "obs+gradual", "--out",
                       tmp_path / "g")
    assert_user_error(code, err, "all at once")


def test_the_sequential_correction_gives_on_shifted_inputs_what_the_dense_layer_gave():
    """Inputs X̂ = X M (the layers before pruned): the corrected weights w M^-T reproduce X wᵀ."""
    x = inputs(d=6)
    g = torch.Generator().manual_seed(4)
    m = torch.eye(6, dtype=torch.float64) + 0.3 * torch.randn(6, 6, generator=g, dtype=torch.float64)
    x_hat = x @ m
    w = torch.randn(3, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    fixed = corrected(w, x_hat.T @ x_hat / len(x), x_hat.T @ x / len(x), damp=1e-12)
    assert torch.allclose(x_hat @ fixed.T, x @ w.T, atol=1e-6)
    assert torch.allclose(corrected(w, x.T @ x / len(x), x.T @ x / len(x), 1e-12), w, atol=1e-8)


def test_sequential_obs_counts_exactly_and_keeps_its_model(obs_run, tmp_path):
    out, points, cfg = obs_run
    sweep = Sweep(dataclasses.replace(cfg, methods=("obs-seq-global",), levels=(0.8,)), tmp_path / "seq")
    p = next(p for p in sweep.run() if p.method == "obs-seq-global")
    assert p.prunable_params - p.nonzero_params == round(0.8 * p.prunable_params)
    assert p.correct > points["global", 0.8].correct
    pruned, _, _ = point_model(tmp_path / "seq", "obs-seq-global", 0.8)
    assert int(sum((w == 0).sum() for n, w in pruned.model.named_parameters() if n in p.layers)) == \
        p.prunable_params - p.nonzero_params


def test_the_drift_term_fits_the_outputs_plus_what_they_should_add():
    """With D = X̂ᵀR the corrected weights are the least-squares fit of X̂ ŵᵀ to X wᵀ + R."""
    x = inputs(d=6)
    x_hat = x + 0.2 * inputs(d=6, seed=3)
    w = torch.randn(3, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    r = torch.randn(len(x), 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    n = len(x)
    fitted = corrected(w, x_hat.T @ x_hat / n, x_hat.T @ x / n, 1e-12, drift=x_hat.T @ r / n)
    assert torch.allclose(fitted.T, torch.linalg.lstsq(x_hat, x @ w.T + r).solution, atol=1e-8)


def _tiny_resnet_and_images():
    from prunelab.models import CifarResNet, ModelCard

    torch.manual_seed(0)
    net, images = CifarResNet(2), torch.randn(64, 3, 8, 8)
    for m in net.modules():  # statistics of its own inputs, as a trained network has
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        net.train()(images)
    card = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3)
    return net.eval(), images, card


def features(net, images):
    """What the classifier of a CIFAR ResNet reads."""
    with torch.no_grad():
        x = nn.functional.relu(net.bn1(net.conv1(images)))
        return net.layer3(net.layer2(net.layer1(x))).mean((2, 3))


def test_fitting_the_residual_stream_keeps_the_features_closer_than_fitting_each_branch():
    from prunelab.pruning import PRUNERS, PruneContext

    net, images, card = _tiny_resnet_and_images()
    dense = features(net, images)
    errors = {}
    for method in ("obs-seq-global", "obs-res-global"):
        model = copy.deepcopy(net)
        ctx = PruneContext(card, calibration=lambda: Calibration(images, batch_size=32))
        pruned = PRUNERS.get(method).prune(model, 0.7, ctx)
        zeros = sum(int((~m).sum()) for m in pruned.masks.values())
        assert zeros == round(0.7 * sum(m.numel() for m in pruned.masks.values()))
        errors[method] = float(((features(model, images) - dense) ** 2).sum())
    assert errors["obs-res-global"] < 0.6 * errors["obs-seq-global"], errors  # 0.37-0.39 over seeds 0-2


def test_the_drift_is_zero_where_nothing_was_pruned_and_a_net_without_blocks_is_refused(
        digits_checkpoint, monkeypatch, capsys, tmp_path):
    from prunelab.models.residual import residual_blocks

    net, images, _ = _tiny_resnet_and_images()
    blocks = residual_blocks(net)
    assert list(blocks) == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1"]
    _, _, drift = Calibration(images).paired(net, copy.deepcopy(net), "layer2.0.conv2.weight",
                                             ("layer2.0", blocks["layer2.0"]))
    assert drift.shape == (32 * 9, 32) and float(drift.abs().max()) == 0.0
    code, _, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--methods", "obs-res-global",
                       "--levels", 0.5, "--out", tmp_path / "r", "--no-report")
    assert_user_error(code, err, "no residual blocks", "use 'obs-seq-global'")
