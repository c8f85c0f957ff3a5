"""Structured pruning, N:M and compute metrics: smaller models that run, residual coupling, exact patterns."""

import time

import pytest
import torch
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.measure import forward_runner, latencies, latency, macs
from prunelab.models import ModelCard, ModelInfo, PadShortcut, create_model, model_info
from prunelab.pruning import PRUNERS, PruneContext
from prunelab.pruning.masks import nm_mask, prunable_weights
from prunelab.pruning.structured import (
    TOLERANCE,
    ChannelMapShortcut,
    architecture_spec,
    build_from_spec,
    make_prunable,
    prune_channels,
)

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    return create_model("resnet20").eval()


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_channel_map_equals_pad_shortcut():
    x = torch.randn(2, 16, 8, 8)
    pad = PadShortcut(16)
    assert torch.equal(ChannelMapShortcut.from_pad(pad, 16)(x), pad(x))
    model = create_model("resnet20").eval()
    with torch.no_grad():
        before = model(X)
        assert torch.equal(make_prunable(model, X)(X), before)
    assert not any(isinstance(m, PadShortcut) for m in model.modules())


@pytest.mark.parametrize("allocation", ["layerwise", "global"])
def test_smaller_model_that_runs_and_hits_the_level(resnet20, allocation):
    info = model_info("resnet20")
    r = prune_channels(resnet20, info, X, 0.5, allocation)
    assert r.model is not resnet20 and n_params(resnet20) == 269_722  # input untouched
    assert n_params(r.model) < 0.55 * n_params(resnet20)
    assert abs(r.achieved - 0.5) <= TOLERANCE and r.requested == 0.5
    assert r.model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    # achieved is counted on the smaller model, per layer as for masks
    removed = sum(z for z, _ in r.layers.values())
    assert r.achieved == pytest.approx(removed / sum(n for _, n in r.layers.values()))
    assert r.model.linear.out_features == 10 and r.model.conv1.in_channels == 3


@pytest.mark.parametrize("allocation", ["layerwise", "global"])
def test_a_pruned_model_pruned_further_counts_against_the_original(resnet20, allocation):
    info = model_info("resnet20")
    original = {k: w.numel() for k, w in prunable_weights(resnet20, info.classifier).items()}
    first = prune_channels(resnet20, info, X, 0.3, allocation)
    second = prune_channels(first.model, info, X, 0.5, allocation, original=original)
    assert abs(second.achieved - 0.5) <= TOLERANCE and second.requested == 0.5
    assert {k: n for k, (_, n) in second.layers.items()} == original  # sizes of the original network
    left = sum(w.numel() for w in prunable_weights(second.model, info.classifier).values())
    assert second.achieved == pytest.approx(1 - left / sum(original.values()))
    assert n_params(second.model) < n_params(first.model)
    # a level the smaller model already passed removes nothing more
    again = prune_channels(first.model, info, X, 0.2, allocation, original=original)
    assert n_params(again.model) == n_params(first.model) and again.achieved == pytest.approx(first.achieved)


def test_a_rounded_model_pruned_further_stays_rounded(resnet20):
    """The iterative chain's steps: a group already down to one multiple of `round_to` keeps it,
    so every width stays a multiple however many steps follow."""
    info = model_info("resnet20")
    original = {k: w.numel() for k, w in prunable_weights(resnet20, info.classifier).items()}
    model = resnet20
    for level in (0.3, 0.5, 0.7):
        r = prune_channels(model, info, X, level, "global", round_to=8, original=original)
        model = r.model
        widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert all(w % 8 == 0 for w in widths), (level, widths)
    assert r.achieved > 0.5  # the steps did remove weights, elsewhere than the groups at 8


def test_residual_coupling_consistent(resnet20):
    r = prune_channels(resnet20, model_info("resnet20"), X, 0.6, "global", round_to=4)
    m = r.model
    for stage in (m.layer1, m.layer2, m.layer3):
        widths = {block.conv2.out_channels for block in stage} | {block.bn2.num_features for block in stage}
        assert len(widths) == 1  # every block of a stage adds into the same channels
        width = widths.pop()
        for block in stage:
            assert block.conv1.out_channels == block.bn1.num_features == block.conv2.in_channels
            if isinstance(block.shortcut, ChannelMapShortcut):
                assert block.shortcut.out_channels == width
                assert int(block.shortcut.index.max()) <= block.shortcut.in_channels
    assert m.layer1[0].conv2.out_channels == m.conv1.out_channels == m.layer2[0].shortcut.in_channels
    assert m.linear.in_features == m.layer3[0].conv2.out_channels
    for kept, _ in r.channels.values():
        assert kept % 4 == 0  # round_to: every group of more than 4 channels keeps a multiple


def test_removing_dead_channels_changes_nothing(resnet20):
    """The invariant: channels whose activations are exactly zero can go without changing the output.
    A quarter of every group is killed (filters and batch-norm affine zeroed; in stages 2 and 3 the
    dead channels are ones the option-A shortcut pads with zeros), then layerwise pruning at the
    level of exactly that quarter removes exactly them."""
    model = make_prunable(create_model("resnet20").eval(), X)
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():  # non-trivial batch-norm statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)

        def kill(conv, bn, idx):
            conv.weight[idx] = 0
            bn.weight[idx] = 0
            bn.bias[idx] = 0

        dead = {16: list(range(4)), 32: list(range(8)), 64: list(range(16))}  # pad positions of stages 2, 3
        kill(model.conv1, model.bn1, dead[16])
        for stage in (model.layer1, model.layer2, model.layer3):
            for block in stage:
                width = block.conv1.out_channels
                kill(block.conv1, block.bn1, list(range(width // 4, width // 2)))
                kill(block.conv2, block.bn2, dead[block.conv2.out_channels])
        x = torch.randn(4, 3, 32, 32)
        want = model(x)
    info = model_info("resnet20")
    prunable = prunable_weights(model, info.classifier)
    stem = prunable["conv1.weight"].numel()
    level = 1 - (0.5625 * (sum(w.numel() for w in prunable.values()) - stem) + 0.75 * stem) / sum(
        w.numel() for w in prunable.values())
    r = prune_channels(model, info, X, level, "layerwise")
    assert all(kept == 3 * n // 4 for kept, n in r.channels.values()), r.channels
    assert r.achieved == pytest.approx(level)
    with torch.no_grad():
        got = r.model(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_layer_cap_and_level_zero(resnet20):
    info = model_info("resnet20")
    r = prune_channels(resnet20, info, X, 0.7, "global", layer_cap=0.5)
    assert all(kept >= n - n // 2 for kept, n in r.channels.values())
    zero = prune_channels(resnet20, info, X, 0.0)
    assert zero.achieved == 0 and n_params(zero.model) == n_params(resnet20)
    with torch.no_grad():
        assert torch.equal(zero.model(X), resnet20(X))


def test_spec_rebuilds_the_pruned_model_exactly(resnet20):
    info = model_info("resnet20")
    r = prune_channels(resnet20, info, X, 0.5, "global", round_to=8)
    spec = architecture_spec(r.model, info)
    rebuilt = build_from_spec(spec)
    rebuilt.load_state_dict(r.model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(X), r.model(X))
    with pytest.raises(PrunelabError, match="not a prunelab structured spec"):
        build_from_spec({"format": "other"})


class ChannelScale(nn.Module):
    """A per-channel scale held in a buffer: Torch-Pruning cannot see it, so it is not pruned."""

    def __init__(self, n):
        super().__init__()
        self.register_buffer("scale", torch.ones(n))

    def forward(self, x):
        return x * self.scale[None, :, None, None]


class Opaque(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.scale = ChannelScale(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.conv2(torch.relu(self.scale(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def test_untraceable_model_is_a_one_line_error_naming_the_layer():
    info = ModelInfo("opaque", "fc", "conv1", (0.5,) * 3, (0.5,) * 3, "", lambda n, c: Opaque())
    with pytest.raises(PrunelabError, match="layer 'scale'") as exc:
        prune_channels(Opaque(), info, X, 0.5)
    assert "\n" not in str(exc.value)


def test_bad_arguments():
    info = model_info("resnet20")
    for kwargs, needle in (({"allocation": "both"}, "allocation"), ({"round_to": 0}, "round_to"),
                           ({"layer_cap": 1.5}, "layer cap")):
        with pytest.raises(PrunelabError, match=needle):
            prune_channels(create_model("resnet20"), info, X, 0.5, **kwargs)


# ---------------------------------------------------------------- N:M


def test_nm_exact_pattern():
    w = torch.randn(6, 8, 3, 3)
    mask = nm_mask(w.abs(), 2, 4)
    # groups of 4 run along the input channels at each (out, kh, kw), as sparse tensor cores read them
    groups, kept = w.abs().permute(0, 2, 3, 1).reshape(-1, 4), mask.permute(0, 2, 3, 1).reshape(-1, 4)
    assert (kept.sum(1) == 2).all() and mask.shape == w.shape
    # the two kept are the two largest of each group
    assert (groups[kept].reshape(-1, 2).min(1).values >= groups[~kept].reshape(-1, 2).max(1).values).all()
    assert 1 - mask.float().mean() == 0.5
    linear = torch.randn(3, 8)
    assert torch.equal(nm_mask(linear.abs(), 2, 4).reshape(-1, 4).sum(1), torch.full((6,), 2))
    with pytest.raises(PrunelabError, match="6 input channels"):
        nm_mask(torch.randn(4, 6, 3, 3), 2, 4)


def test_nm_method_skips_stem_and_names_bad_layers():
    model = create_model("smallcnn", 10, 1)
    ctx = PruneContext(ModelCard("smallcnn", 10, 1, (0.5,), (0.5,)))
    method = PRUNERS.get("nm-2:4")
    weights = method.weights(model, ctx)
    assert "conv1.weight" not in weights  # 1x3x3 rows of 9 weights
    masks = method.masks(weights, 0.5, ctx)
    assert all(1 - m.float().mean() == 0.5 for m in masks.values())
    with pytest.raises(PrunelabError, match="fixed sparsity"):
        method.masks(weights, 0.7, ctx)
    with pytest.raises(PrunelabError, match="conv2.weight.*not a multiple of 5"):
        PRUNERS.get("nm-2:5").masks(weights, 0.6, ctx)
    with pytest.raises(PrunelabError, match="N:M"):
        PRUNERS.get("nm-5:4")


# ---------------------------------------------------------------- MACs and latency


def test_mac_counter_matches_the_analytic_count():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)  # 17x17 -> 9x9
    assert macs(conv, (3, 17, 17)).total == 8 * 3 * 3 * 3 * 9 * 9
    net = nn.Sequential(nn.Conv2d(4, 6, 1), nn.Flatten(), nn.Linear(6 * 5 * 5, 7))
    counted = macs(net, (4, 5, 5))
    assert counted.per_layer == {"0": 6 * 4 * 25, "2": 150 * 7} and counted.total == 6 * 4 * 25 + 150 * 7
    assert counted.effective({"0": 0.5}) == 6 * 4 * 25 / 2 + 150 * 7
    assert macs(create_model("resnet56"), (3, 32, 32)).total == 125_485_696


def test_latency_is_measured_and_threads_restored():
    before = torch.get_num_threads()
    t = latency(nn.Conv2d(3, 4, 3), (3, 16, 16), batch=2, threads=1, warmup=1, repeats=3)
    assert t.median > 0 and t.threads == 1 and t.batch == 2 and t.repeats == 3
    assert torch.get_num_threads() == before


def test_latencies_time_the_models_in_turn():
    calls = []

    class Tagged(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag, self.conv = tag, nn.Conv2d(3, 2, 1)

        def forward(self, x):
            calls.append(self.tag)
            return self.conv(x)

    timed = latencies({"a": Tagged("a"), "b": Tagged("b")}, (3, 4, 4), batch=2, threads=1, warmup=1,
                      repeats=3)
    # round-robin, not one model's run: a warm-up round, then per round each model twice in a row
    # (an untimed forward that puts its weights back in cache, then the timed one)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert set(timed) == {"a", "b"} and all(t.repeats == 3 and t.batch == 2 for t in timed.values())


def test_latencies_time_each_model_with_its_own_weights_in_cache():
    last = []

    class ColdAfterOther(nn.Module):
        """Slow (50 ms) on a forward that follows another model's, as a cold cache is."""

        def __init__(self, tag):
            super().__init__()
            self.tag, self.conv = tag, nn.Conv2d(3, 2, 1)

        def forward(self, x):
            if last and last[-1] != self.tag:
                time.sleep(0.05)
            last.append(self.tag)
            return self.conv(x)

    timed = latencies({"a": ColdAfterOther("a"), "b": ColdAfterOther("b")}, (3, 4, 4), threads=1,
                      warmup=1, repeats=3)
    assert all(t.median < 0.05 for t in timed.values())


def test_onnxruntime_runs_the_same_model_and_is_timed():
    net = create_model("resnet20").eval()
    x = torch.randn(3, 3, 32, 32)
    want = forward_runner(net, (3, 32, 32), "torch")(x)
    got = forward_runner(net, (3, 32, 32), "onnxruntime")(x)
    assert got.shape == want.shape == (3, 10)
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, torch.zeros_like(got))
    t = latency(net, (3, 32, 32), batch=2, threads=1, warmup=1, repeats=2, runtime="onnxruntime")
    assert t.median > 0 and t.runtime == "onnxruntime" and t.threads == 1
    with pytest.raises(PrunelabError, match="unknown latency runtime 'tvm'"):
        latency(net, (3, 32, 32), runtime="tvm")
