"""Second-order pruning of one layer (Optimal Brain Surgeon as SparseGPT solves it, Frantar & Alistarh
2023): prune the weights whose removal costs the least on the layer's calibration inputs, and
update the weights still to be visited so the layer's output changes as little as possible.

A layer is a matrix W (rows = outputs, columns = inputs; a convolution's columns are its im2col
patch in (kh, kw, in) order, so an N:M group is M consecutive columns). H = X Xᵀ of its inputs
X. Pure functions: tensors in, tensors out."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PrunelabError


def as_columns(weight: torch.Tensor) -> torch.Tensor:
    """A conv (out, in, kh, kw) or linear (out, in) weight as the (out, d) matrix OBS works on."""
    if weight.dim() == 4:
        return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return weight.reshape(weight.shape[0], -1)


def from_columns(matrix: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of `as_columns` for a weight of `shape`."""
    if len(shape) == 4:
        out, cin, kh, kw = shape
        return matrix.reshape(out, kh, kw, cin).permute(0, 3, 1, 2).contiguous()
    return matrix.reshape(shape)


def check_reads_inputs(model: nn.Module, weights, method: str) -> None:
    """Refuse, in one line and before any work, a network where `method`, which reads the inputs of
    the layers owning `weights` as rows (`patches`), meets a layer it cannot: a grouped or
    depthwise convolution, or a layer that is neither a conv nor a linear one."""
    for name in weights:
        layer = model.get_submodule(name.removesuffix(".weight"))
        if isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1):
            continue
        kind = f"{type(layer).__name__} with groups={getattr(layer, 'groups', '?')}"
        raise PrunelabError(f"method '{method}' reads each layer's inputs, and layer '{name}' is a {kind}: "
                            f"it handles linear layers and convolutions with groups=1; use a magnitude "
                            f"method (global, lamp) or a channel method for this network")


def patches(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The rows a layer multiplies by its weight matrix: (positions, d), columns as in `as_columns`."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if not isinstance(module, nn.Conv2d) or module.groups != 1:
        groups = getattr(module, "groups", "?")
        raise PrunelabError(f"pruners that read layer inputs (second-order, Wanda) handle linear layers and "
                            f"convolutions with groups=1; "
                            f"{type(module).__name__} with groups={groups} is neither")
    cols = nn.functional.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
    b, _, positions = cols.shape
    kk, cin = module.kernel_size[0] * module.kernel_size[1], module.in_channels
    cols = cols.view(b, cin, kk, positions).transpose(1, 2)  # (b, kk, in, L): input channels innermost
    return cols.reshape(b, kk * cin, positions).transpose(1, 2).reshape(-1, kk * cin)


def _revived(h: torch.Tensor) -> torch.Tensor:
    """A float64 copy of H whose dead diagonal entries (inputs that were always zero) are 1."""
    h = h.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    return h


def inverse_factor(h: torch.Tensor, damp: float, name: str) -> torch.Tensor:
    """U, upper triangular with Uᵀ U = (H + damp * mean(diag H) * I)⁻¹, in float64. Inputs that were
    always zero (a dead diagonal) get 1 there, so H is invertible and their weights cost nothing."""
    h = _revived(h)
    scale = float(torch.diag(h).mean())
    for attempt in range(6):  # more damping if the calibration inputs leave H singular
        try:
            damped = h + (damp * 10**attempt) * scale * torch.eye(len(h), dtype=h.dtype, device=h.device)
            inverse = torch.cholesky_inverse(torch.linalg.cholesky(damped))
            return torch.linalg.cholesky(inverse, upper=True)
        except torch.linalg.LinAlgError:
            continue
    raise PrunelabError(f"layer {name}: its calibration Hessian stays singular even damped by "
                        f"{damp * 1e5:g}; pass more --calibration images")


def _quotas(free: torch.Tensor, extra: int) -> list[int]:
    """`extra` prunings shared between blocks in proportion to their free weights, exactly."""
    cum = torch.cumsum(free.double(), 0)
    total = float(cum[-1]) if len(cum) else 0.0
    edges = [0] + [round(extra * float(c) / total) if total else 0 for c in cum]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def sparsegpt(w: torch.Tensor, u: torch.Tensor, prune: int | None = None, nm: tuple[int, int] | None = None,
              prior: torch.Tensor | None = None, dead: torch.Tensor | None = None, block: int = 128
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune the (out, d) matrix `w` given the inverse Hessian's factor `u` (`inverse_factor`).

    Columns are visited left to right in blocks; at a block's start the mask of the block is chosen
    (the lowest w²/u_ii² of the block's weights, rows competing), and each pruned weight's error is
    spread over the columns not yet visited. Exactly `prune` weights are removed (or, with `nm`,
    M - N of every M consecutive columns of a row); weights pruned in `prior` stay pruned, and
    weights of `dead` columns (inputs always zero) go first.

    Returns:
        (the updated matrix with pruned entries exactly 0, the bool keep mask).
    """
    w = w.double().clone()
    r, d = w.shape
    pruned = ~prior if prior is not None else torch.zeros_like(w, dtype=torch.bool)
    keep = torch.ones_like(w, dtype=torch.bool)
    if nm is not None and block % nm[1]:
        block = nm[1] * max(1, block // nm[1])
    starts = list(range(0, d, block))
    if nm is None:
        free = torch.tensor([int((~pruned[:, s:s + block]).sum()) for s in starts])
        quotas = _quotas(free, prune - int(pruned.sum()))
    for b, i1 in enumerate(starts):
        i2 = min(i1 + block, d)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]
        diag = torch.diag(u1)
        errors = torch.zeros_like(w1)
        if nm is None:
            drop = _block_mask(w1, diag, pruned[:, i1:i2], dead[i1:i2] if dead is not None else None,
                               quotas[b])
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                drop_nm = _nm_mask(w1[:, i:i + nm[1]], diag[i:i + nm[1]], nm)
            gone = drop_nm[:, i % nm[1]] if nm is not None else drop[:, i]
            col = w1[:, i]
            q = torch.where(gone, torch.zeros_like(col), col)
            err = (col - q) / diag[i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]
            w1[:, i] = q
            errors[:, i] = err
            keep[:, i1 + i] = ~gone
        w[:, i1:i2] = w1
        w[:, i2:] -= errors @ u[i1:i2, i2:]
    return w.masked_fill(~keep, 0.0), keep


def _block_mask(w1, diag, pruned, dead, quota: int) -> torch.Tensor:
    """The block's weights to prune: those pruned before, then the `quota` lowest saliencies."""
    scores = w1**2 / diag[None, :] ** 2
    if dead is not None:
        scores[:, dead] = 0.0
    scores = scores.masked_fill(pruned, float("-inf"))
    k = int(pruned.sum()) + quota
    drop = torch.zeros_like(w1, dtype=torch.bool).reshape(-1)
    if k:
        drop[torch.topk(scores.reshape(-1), k, largest=False).indices] = True
    return drop.view(w1.shape)


def _nm_mask(w, diag, nm: tuple[int, int]) -> torch.Tensor:
    """Of M consecutive columns, prune the M - N of lowest saliency in every row."""
    n, m = nm
    scores = w**2 / diag[None, : w.shape[1]] ** 2
    drop = torch.zeros_like(w, dtype=torch.bool)
    if m - n:
        drop.scatter_(1, torch.topk(scores, m - n, dim=1, largest=False).indices, True)
    return drop


def corrected(w: torch.Tensor, h: torch.Tensor, c: torch.Tensor, damp: float,
              drift: torch.Tensor | None = None) -> torch.Tensor:
    """The weights that best give, on inputs X̂, what `w` gives on inputs X: argmin ||X wᵀ - X̂ ŵᵀ||²,
    i.e. ŵ = w Cᵀ H⁻¹ with H = X̂ᵀX̂ and C = X̂ᵀX (H damped as for pruning). Sequential pruning
    starts each layer from these, so the error the layers before it made is made up for too.
    With `drift` D = X̂ᵀR (R: what the outputs should also add), the target is X wᵀ + R instead."""
    h = _revived(h)
    h += damp * float(torch.diag(h).mean()) * torch.eye(len(h), dtype=h.dtype, device=h.device)
    rhs = c.double() @ w.double().T
    if drift is not None:
        rhs = rhs + drift.double()
    return torch.linalg.solve(h, rhs).T


def exact_obs(w: torch.Tensor, u: torch.Tensor, prune: int, prior: torch.Tensor | None = None,
              dead: torch.Tensor | None = None, group: int = 8, memory: int = 2**29
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune the (out, d) matrix `w` by exact OBS, row by row (ExactOBS, Frantar & Alistarh 2022).

    Every row greedily drops its `group` weights of lowest w²/[H⁻¹]_qq, removes them from its own
    copy of H⁻¹ (a Schur complement) and updates its other weights, until it has dropped as many
    as any row could be asked to; the rows then compete for the layer's `prune` weights through
    the losses their drops cost (each row's running maximum, so it keeps a prefix of its order),
    and each row is solved in closed form for the weights its prefix leaves: w - H⁻¹[:, P]
    H⁻¹[P, P]⁻¹ w_P. Weights pruned in `prior` go first, then those of `dead` columns. `u` is
    `inverse_factor`'s; rows are taken in chunks whose H⁻¹ copies fit in `memory` bytes.

    Returns:
        (the updated matrix with pruned entries exactly 0, the bool keep mask).
    """
    w = w.double()
    r, d = w.shape
    hinv = u.T @ u
    forced = ~prior if prior is not None else torch.zeros_like(w, dtype=torch.bool)
    group = max(1, min(group, d))
    reach = max(-(-prune // r) * 3 // 2 + group, int(forced.sum(1).max()) if r else 0)
    steps = -(-min(d, reach) // group)
    chunk = max(1, memory // (8 * d * d))
    order, loss = zip(*(_greedy(w[i:i + chunk], hinv, forced[i:i + chunk], dead, group, steps)
                        for i in range(0, r, chunk)), strict=True)
    order, loss = torch.cat(order), torch.cummax(torch.cat(loss), dim=1).values
    counts = torch.zeros(r, dtype=torch.long)
    if prune:
        picked = torch.topk(loss.reshape(-1), prune, largest=False).indices // loss.shape[1]
        counts = torch.bincount(picked, minlength=r)
    keep = torch.ones_like(w, dtype=torch.bool)
    out = w.clone()
    for i in range(r):
        p = order[i, :counts[i]]
        if len(p):
            out[i] -= hinv[:, p] @ torch.linalg.solve(hinv[p][:, p], w[i, p])
            keep[i, p] = False
    return out.masked_fill(~keep, 0.0), keep


def _greedy(w: torch.Tensor, hinv: torch.Tensor, forced: torch.Tensor, dead: torch.Tensor | None,
            group: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's first drops (up to `steps * group`), in order, and the loss each cost (forced:
    -inf). A dropped weight's row and column of H⁻¹ become zero, so the matrices keep their size."""
    rows, d = w.shape
    w, h = w.clone(), hinv.expand(rows, d, d).clone()
    kept = torch.ones_like(w, dtype=torch.bool)
    order, loss = [], []
    for step in range(steps):
        g = min(group, d - step * group)
        score = w**2 / torch.diagonal(h, dim1=1, dim2=2)
        if dead is not None:
            score[:, dead] = 0.0
        score = torch.where(kept, torch.where(forced, float("-inf"), score), float("inf"))
        cost, p = torch.topk(score, g, dim=1, largest=False)
        cols = torch.gather(h, 2, p[:, None, :].expand(rows, d, g))  # H⁻¹[:, P], (rows, d, g)
        inverse = torch.linalg.inv(torch.gather(cols, 1, p[:, :, None].expand(rows, g, g)))
        w -= (cols @ (inverse @ torch.gather(w, 1, p)[..., None]))[..., 0]
        h.baddbmm_(cols, inverse @ cols.transpose(1, 2), alpha=-1.0)  # the Schur complement, in place
        kept.scatter_(1, p, False)
        w = w.masked_fill(~kept, 0.0)
        order.append(p)
        loss.append(cost / 2)
    return torch.cat(order, 1), torch.cat(loss, 1)
