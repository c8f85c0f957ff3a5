"""The pruning contract, checked on every registered method at once (a new method is covered the
day it is registered): given what it declares it needs, it prunes a small residual network to its
level; it reads calibration images if and only if it says so; mask pruners return boolean masks
keyed by prunable weight, zero exactly what they mask and leave the classifier alone; pruners that
say they keep weights as they are do; channel and block pruners return a smaller network that runs;
and pruning again with the same context gives the same network (what `export` and `retime` rebuild)."""

import copy

import pytest
import torch

from prunelab.errors import PrunelabError
from prunelab.models.module import card_for_module
from prunelab.models.zoo.cifar import CifarResNet
from prunelab.pruning import PRUNERS, PruneContext
from prunelab.pruning.calibration import Calibration
from prunelab.pruning.masks import prunable_weights

SHAPE = (3, 8, 8)
IMAGES = torch.randn(48, *SHAPE, generator=torch.Generator().manual_seed(1))
METHODS = [name.replace("N:M", "2:4") for name in PRUNERS.names()]  # patterns by one instance
SLOW = {"obc-global", "obc-seq-global", "obc-res-global"}  # ExactOBS: ~27 s each here, run with -m slow


class ByMacs:
    """A latency table (duck-typed) pricing every layer at inputs x outputs nanoseconds."""

    source = "a test table"

    def __init__(self, model):
        self.layers = dict.fromkeys(layers(model))

    def seconds(self, layer, cin, cout):
        return 1e-9 * cin * cout


def layers(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]


def network():
    torch.manual_seed(0)
    model = CifarResNet(2, num_classes=10).eval()  # ResNet-14: three blocks with identity shortcuts
    for m in model.modules():  # batch norms as a trained network's: not all alike
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def profile(model, channels: bool) -> dict:
    """A sensitivity profile naming every conv/linear: deeper layers tolerate less."""
    keys = layers(model) if channels else [f"{n}.weight" for n in layers(model)]
    return {"unit": "channels" if channels else "weights", "dense_top1": 90.0,
            "layers": {k: [[0.0, 90.0], [0.5, 90.0 - i], [0.9, 60.0 - i]] for i, k in enumerate(keys)}}


def context(model, pruner, reads: list) -> PruneContext:
    """Everything `pruner` declares it needs; `reads` records every call for calibration images."""
    def calibration():
        reads.append(1)
        return Calibration(IMAGES)

    return PruneContext(card_for_module(model, SHAPE), torch.zeros(1, *SHAPE), seed=3,
                        calibration=calibration,
                        profile=profile(model, pruner.shrinks) if pruner.needs_profile else None,
                        latency_table=ByMacs(model) if pruner.needs_latency_table else None)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in METHODS])
def test_every_method_keeps_the_pruning_contract(name):
    pruner, dense = PRUNERS.get(name), network()
    level = pruner.fixed_level if pruner.fixed_level is not None else 0.5
    reads: list = []
    ctx = context(dense, pruner, reads)
    pruner.check_model(dense, ctx)
    out = pruner.prune(copy.deepcopy(dense), level, ctx)
    assert bool(reads) == pruner.needs_calibration, "reads calibration images iff it says it needs them"
    again = pruner.prune(copy.deepcopy(dense), level, context(dense, pruner, []))
    for key, value in out.model.state_dict().items():  # the same context rebuilds the same network
        assert torch.equal(value, again.model.state_dict()[key]), key
    with torch.no_grad():
        assert out.model(IMAGES[:2]).shape == (2, 10)
    if pruner.shrinks:
        assert out.masks is None and out.structured is not None
        assert 0 < out.structured.achieved <= level + 0.1
        assert sum(p.numel() for p in out.model.parameters()) < sum(p.numel() for p in dense.parameters())
        return
    weights = prunable_weights(out.model, "linear")
    assert out.masks and set(out.masks) <= set(weights) and "linear.weight" not in out.masks
    removed = total = 0
    for key, mask in out.masks.items():
        assert mask.dtype == torch.bool and mask.shape == weights[key].shape, key
        assert not weights[key][~mask].any(), f"{key}: a masked weight is not zero"
        if not pruner.updates_weights:
            kept = torch.equal(weights[key][mask], dense.get_parameter(key)[mask])
            assert kept, f"{key}: a kept weight moved"
        removed, total = removed + int((~mask).sum()), total + mask.numel()
    assert abs(removed / total - level) < 0.01


@pytest.mark.parametrize("name", [n for n in METHODS if PRUNERS.get(n).needs_calibration])
def test_a_method_that_reads_calibration_images_refuses_a_context_without_them(name):
    pruner, model = PRUNERS.get(name), network()
    ctx = context(model, pruner, []).but(calibration=None)
    with pytest.raises(PrunelabError, match="calibration images") as exc:
        pruner.prune(model, pruner.fixed_level or 0.5, ctx)
    assert "\n" not in str(exc.value)


class Depthwise(torch.nn.Module):
    """A network with a depthwise convolution (as MobileNets have)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.depthwise(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("name", [n for n in METHODS if PRUNERS.get(n).needs_calibration and n != "blocks"])
def test_a_method_that_reads_layer_inputs_refuses_a_depthwise_conv_before_any_work(name):
    model, pruner = Depthwise().eval(), PRUNERS.get(name)
    ctx = PruneContext(card_for_module(model, SHAPE), torch.zeros(1, *SHAPE), calibration=lambda: 1 / 0)
    with pytest.raises(PrunelabError, match="layer 'depthwise.weight' is a Conv2d with groups=8") as exc:
        pruner.check_model(model, ctx)  # never reaches for calibration images: refused first
    assert "\n" not in str(exc.value)
