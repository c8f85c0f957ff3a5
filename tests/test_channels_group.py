"""Channels scored by every coupled parameter, residual streams kept whole, and reconstruction by
least squares: what each guarantees, on ResNet-20 (residual streams) and the digits CNN."""

import copy

import pytest
import torch
from cli_helpers import run
from pruning_helpers import varied_resnet20

from prunelab.models import ModelCard, model_info
from prunelab.pruning import GROUP_CRITERIA, PRUNERS, PruneContext
from prunelab.pruning.calibration import Calibration
from prunelab.pruning.reconstruction import downstream, reconstruct, starved
from prunelab.pruning.structured import make_prunable, prune_channels

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def resnet20():
    return varied_resnet20()


def _group_of(model, root: str):
    """Torch-Pruning's group of `root`'s output channels."""
    import torch_pruning as tp

    from prunelab.pruning.structured import ChannelMapShortcut, _ChannelMapPruner

    dg = tp.DependencyGraph().build_dependency(model, example_inputs=X,
                                               customized_pruners={ChannelMapShortcut: _ChannelMapPruner()})
    layer = model.get_submodule(root)
    return dg.get_pruning_group(layer, tp.prune_conv_out_channels, list(range(layer.out_channels)))


def test_group_scores_read_every_coupled_parameter(resnet20):
    net = make_prunable(copy.deepcopy(resnet20), X)
    block = net.layer1[0]
    with torch.no_grad():
        block.conv1.weight[3] = 0  # channel 3: nothing anywhere
        block.bn1.weight[3], block.bn1.bias[3] = 0, 0
        block.conv2.weight[:, 3] = 0
        block.conv1.weight[5] *= 1e-3  # channel 5: a faint filter, but what reads it is strong
        block.conv2.weight[:, 5] *= 50
    group = _group_of(net, "layer1.0.conv1")
    filter_l1, l1, l2 = (GROUP_CRITERIA.get(n).score(group) for n in ("filter-l1", "group-l1", "group-l2"))
    assert l1[3] == 0 and l2[3] == 0 and GROUP_CRITERIA.get("bn-scale").score(group)[3] == 0
    others = [i for i in range(16) if i not in (3, 5)]
    assert filter_l1[5] < filter_l1[others].min() and l1[5] > l1[others].min()  # the coupling saves it
    assert torch.equal(block.conv2.weight[:, 3], torch.zeros_like(block.conv2.weight[:, 3]))  # read only


@pytest.mark.parametrize("allocation", ["layerwise", "global"])
def test_keeping_the_stream_removes_only_channels_inside_blocks(resnet20, allocation):
    r = prune_channels(resnet20, model_info("resnet20"), X, 0.4, allocation,
                       importance=GROUP_CRITERIA.get("group-l2").score, keep_stream=True)
    assert r.within_tolerance
    net = r.model
    assert net.conv1.out_channels == 16 and net.linear.in_features == 64
    blocks = [b for stage in (net.layer1, net.layer2, net.layer3) for b in stage]
    dense = [b for stage in (resnet20.layer1, resnet20.layer2, resnet20.layer3) for b in stage]
    assert all(b.conv2.out_channels == d.conv2.out_channels for b, d in zip(blocks, dense, strict=True))
    assert sum(b.conv1.out_channels for b in blocks) < sum(d.conv1.out_channels for d in dense)
    cut = {f"layer{s}.{i}.conv1" for s in (1, 2, 3) for i in range(3)
           if net.get_submodule(f"layer{s}.{i}.conv1").out_channels < 16 * 2 ** (s - 1)}
    assert set(r.kept_outputs) == cut


def _errors(dense, pruned, images, names):
    """Squared error of each named layer's output against the dense layer's, summed over `images`."""
    outs = {}

    def grab(tag, name):
        def hook(module, args, out):
            outs[tag, name] = out
        return hook

    hooks = [net.get_submodule(n).register_forward_hook(grab(tag, n))
             for tag, net in (("d", dense), ("p", pruned)) for n in names]
    with torch.no_grad():
        logits = dense(images) - pruned(images)
    for h in hooks:
        h.remove()
    return {n: float((outs["d", n] - outs["p", n]).pow(2).sum()) for n in names}, float(logits.pow(2).sum())


def test_reconstruction_brings_each_refitted_layer_and_the_output_closer(resnet20):
    ctx = PruneContext(ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.5,) * 3), X)
    result = PRUNERS.get("channels-inner").prune(resnet20, 0.5, ctx)
    pruned, kept = result.model, result.structured.kept_outputs
    images = torch.randn(96, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    names = starved(resnet20, pruned)
    assert names == [f"layer{s}.{i}.conv2" for s in (1, 2, 3) for i in range(3)]  # the stream kept
    changed = downstream(resnet20, pruned)
    assert changed[0] == names[0] and set(names) < set(changed) and changed[-1] == "linear"
    before, out_before = _errors(resnet20, pruned, images, names[:1])
    refitted = copy.deepcopy(pruned)
    assert reconstruct(resnet20, refitted, kept, Calibration(images, rows=4096), damp=1e-4) == changed
    after, out_after = _errors(resnet20, refitted, images, names[:1])
    assert after[names[0]] < 0.5 * before[names[0]]  # the first refit sees exactly the pruned inputs
    assert out_after < out_before
    unchanged = copy.deepcopy(resnet20)
    assert reconstruct(resnet20, unchanged, {}, Calibration(images), damp=1e-4) == []  # nothing lost


def test_a_reconstructed_point_is_kept_and_exported_as_measured(digits_checkpoint, tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "run"
    code, stdout, err = run(monkeypatch, capsys, "sweep", digits_checkpoint, "--data", "digits", "--methods",
                            "channels-inner,channels-rec", "--levels", "0.5", "--calibration", "128",
                            "--no-report", "--out", out)
    assert code == 0, err
    assert list((out / "models").rglob("*.safetensors"))  # the refitted network is kept
    code, stdout, err = run(monkeypatch, capsys, "export", out, "--method", "channels-rec", "--level", "0.5",
                            "--format", "structured", "--out", tmp_path / "rec.safetensors")
    assert code == 0 and "bit-exact" in stdout, err
