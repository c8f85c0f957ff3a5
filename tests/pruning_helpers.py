"""What the pruning tests share: masks of a named method for given weights, correlated layer inputs."""

from prunelab.pruning import PRUNERS, PruneContext


def masks_of(method: str, weights: dict, level: float, seed: int = 0, prior=None, layer_cap=None,
             profile=None) -> dict:
    """The masks `method` computes for `weights` at `level` (masks only grow from `prior`)."""
    ctx = PruneContext(seed=seed, prior=prior, layer_cap=layer_cap, profile=profile)
    return PRUNERS.get(method).masks(weights, level, ctx)


def inputs(n=400, d=8, seed=0):
    """Correlated layer inputs (n, d), float64, as real activations are."""
    import torch

    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g)
    return (torch.randn(n, d, generator=g) @ mix).double()


def masked_resnet20(sparsity: float, method: str = "global"):
    """A seeded random-init ResNet-20 in eval mode, pruned by `method` (global L1 unless named) to
    `sparsity` (masks applied)."""
    import torch

    from prunelab.models import create_model
    from prunelab.pruning.masks import apply_masks, prunable_weights

    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    w = prunable_weights(model, "linear")
    apply_masks(model, masks_of(method, {k: v.detach() for k, v in w.items()}, sparsity))
    return model


def varied_resnet20():
    """A seeded random-init ResNet-20 in eval mode whose batch norms differ as a trained network's
    do (scales, shifts and variances not all alike)."""
    import torch
    from torch import nn

    from prunelab.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.1, 0.1)
            m.running_var.data.uniform_(0.5, 1.5)
    return model
