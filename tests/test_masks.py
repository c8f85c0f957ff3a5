"""Mask maths and methods: exact counts, shapes, allocation, growth, and the classic study's equivalence."""

import copy

import pytest
import torch
from pruning_helpers import masks_of
from torch import nn
from torch.nn.utils import prune

from prunelab.errors import PrunelabError
from prunelab.models import create_model, model_info
from prunelab.pruning import ALLOCATIONS, PRUNERS, MaskPruner, PruneContext
from prunelab.pruning.masks import (
    apply_masks,
    check_sparsity,
    grow,
    lowest_k_mask,
    n_pruned,
    prunable_weights,
)


def allocate(name: str, scores: dict, level: float, **context) -> dict:
    return ALLOCATIONS.get(name).allocate(scores, level, PruneContext(**context))


def tiny():
    torch.manual_seed(0)
    return create_model("smallcnn", 10, 1)


def weights_of(model, include_classifier=False):
    return prunable_weights(model, model_info("smallcnn").classifier, include_classifier)


def profile_for(weights):
    """A made-up sensitivity profile: later layers tolerate more pruning."""
    layers = {name: [[lv / 10, 90.0 - 4 * lv / (i + 1)] for lv in range(11)]
              for i, name in enumerate(weights)}
    return {"dense_top1": 90.0, "layers": layers}


@pytest.mark.parametrize("sparsity", [0.0, 0.05, 0.33, 0.5, 0.951, 1.0])
@pytest.mark.parametrize("method", sorted(p.name for p in PRUNERS  # every mask method, any level
                                          if isinstance(p, MaskPruner) and p.fixed_level is None))
def test_exact_count_and_shapes(method, sparsity):
    w = weights_of(tiny())
    masks = masks_of(method, w, sparsity, seed=3, profile=profile_for(w))
    assert masks.keys() == w.keys()
    total = sum(p.numel() for p in w.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == round(sparsity * total)
    for name, m in masks.items():
        assert m.shape == w[name].shape and m.dtype == torch.bool
        if PRUNERS.get(method).allocation is ALLOCATIONS.get("layerwise"):
            assert int((~m).sum()) == round(sparsity * m.numel())


def test_layerwise_equals_torch_l1_unstructured():
    """The classic study pruned each layer with prune.l1_unstructured: same masks, exactly."""
    model = tiny()
    ours = masks_of("layerwise", weights_of(model, True), 0.4)
    ref = copy.deepcopy(model)
    for name, module in ref.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            prune.l1_unstructured(module, "weight", amount=0.4)
            assert torch.equal(module.weight_mask.bool(), ours[f"{name}.weight"])


def test_classifier_excluded_unless_asked():
    model = tiny()
    assert "fc.weight" not in weights_of(model)
    assert "fc.weight" in weights_of(model, include_classifier=True)
    assert set(prunable_weights(create_model("resnet20"), "linear")) >= {"conv1.weight"}
    assert "linear.weight" not in prunable_weights(create_model("resnet20"), "linear")


def test_global_ranks_across_layers():
    small = torch.full((4, 4), 0.01) + torch.rand(4, 4) * 1e-3
    large = torch.ones(8, 8) + torch.rand(8, 8)
    masks = allocate("global", {"a": small, "b": large}, 16 / 80)
    assert not masks["a"].any() and masks["b"].all()
    masks = allocate("layerwise", {"a": small, "b": large}, 16 / 80)
    assert int((~masks["a"]).sum()) == 3 and int((~masks["b"]).sum()) == 13


def test_global_layer_cap_spills_over_and_stays_exact():
    small = torch.rand(10, 10) * 0.01
    large = torch.rand(30, 10) + 1
    masks = allocate("global", {"a": small, "b": large}, 0.5, layer_cap=0.9)
    assert int((~masks["a"]).sum()) == 90  # capped at floor(0.9 * 100)
    assert int((~masks["b"]).sum()) == 110  # the rest of round(0.5 * 400) = 200
    full = allocate("global", {"a": small, "b": large}, 1.0, layer_cap=0.9)
    assert all(int(m.sum()) > 0 for m in full.values())  # no layer emptied


def test_random_is_seeded():
    w = weights_of(tiny())
    a = masks_of("random", w, 0.5, seed=1)
    b = masks_of("random", w, 0.5, seed=1)
    c = masks_of("random", w, 0.5, seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_masks_only_grow():
    w = weights_of(tiny())
    first = masks_of("layerwise", w, 0.3)
    # Change the weights so the ranking would revive some pruned ones: it must not.
    shuffled = {k: torch.randn_like(v) for k, v in w.items()}
    second = masks_of("layerwise", shuffled, 0.6, prior=first)
    for k in first:
        assert not (second[k] & ~first[k]).any()
        assert int((~second[k]).sum()) == round(0.6 * second[k].numel())
    assert grow(None, first) is first


def test_sparsity_zero_changes_no_output():
    model = tiny().eval()
    x = torch.randn(4, 1, 8, 8)
    before = model(x)
    apply_masks(model, masks_of("global", weights_of(model), 0.0))
    assert torch.equal(before, model(x))


def test_apply_masks_zeroes_exactly_the_masked():
    model = tiny()
    masks = masks_of("global", weights_of(model), 0.7)
    apply_masks(model, masks)
    params = dict(model.named_parameters())
    for name, m in masks.items():
        assert torch.equal(params[name] != 0, m)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", None, True])
def test_sparsity_validated(bad):
    with pytest.raises(PrunelabError):
        check_sparsity(bad)


def test_n_pruned_rounds_like_torch():
    assert n_pruned(0.5, 7) == round(3.5) == 4
    assert n_pruned(0.05, 10) == 0
    assert int((~lowest_k_mask(torch.arange(10.0), 3)).sum()) == 3
    assert (~lowest_k_mask(torch.arange(10.0), 3))[:3].all()


def test_unknown_method_suggests():
    with pytest.raises(PrunelabError, match="did you mean global"):
        PRUNERS.get("globl")


def test_sensitivity_allocation_prunes_tolerant_layers_first():
    w = weights_of(tiny())
    masks = masks_of("sensitivity", w, 0.3, profile=profile_for(w))
    fractions = [float((~m).float().mean()) for m in masks.values()]
    assert fractions[0] < fractions[1] < fractions[2]  # the profile says later layers care less
    with pytest.raises(PrunelabError, match="needs a profile"):
        masks_of("sensitivity", w, 0.3)
    with pytest.raises(PrunelabError, match="no curve"):
        masks_of("sensitivity", w, 0.3, profile={"dense_top1": 90, "layers": {}})


@pytest.mark.parametrize("method", ["layerwise", "global", "random", "nm-2:4", "sensitivity"])
def test_mask_code_makes_every_tensor_on_its_inputs_device(method):
    """There is no GPU here, so a tensor made without its inputs' device would pass on the CPU and
    fail on CUDA (it did: the global allocation's owner index). With the default device set to
    'meta', any such tensor lands on 'meta' and mixing it with the CPU inputs fails here too."""
    model = tiny()
    weights = {k: w.detach() for k, w in weights_of(model).items() if k != "conv1.weight"}
    profile = profile_for(weights)
    with torch.device("meta"):
        level = 0.5 if method == "nm-2:4" else 0.6
        masks = masks_of(method, weights, level, seed=1, profile=profile,
                              layer_cap=0.9 if method == "global" else None)
        again = masks_of(method, weights, level, seed=1, prior=masks, profile=profile)
    for name, w in weights.items():
        assert masks[name].device == w.device and again[name].device == w.device
