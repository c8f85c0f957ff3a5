"""Pure sparsity schedules: step in, target sparsity out."""

from __future__ import annotations

from .masks import check_sparsity


def cubic(step: int, final: float, begin: int, ramp_steps: int, every: int = 1, initial: float = 0.0
          ) -> float:
    """Gradual pruning of Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3.

    Args:
        step: the training step t.
        final: s_f, the sparsity reached at `begin + ramp_steps`.
        begin: t0, the step at which pruning starts.
        ramp_steps: n * dt, the steps over which sparsity rises.
        every: dt; the target changes only every `every` steps.
        initial: s_i, the sparsity at `begin`.

    Returns:
        the target sparsity at `step` (constant `initial` before `begin`, `final` after the ramp).
    """
    check_sparsity(final, "final sparsity")
    check_sparsity(initial, "initial sparsity")
    if step < begin:
        return initial
    if step >= begin + ramp_steps:
        return final
    t = (step - begin) // every * every
    return final + (initial - final) * (1.0 - t / ramp_steps) ** 3


def geometric(rounds: int, per_round: float) -> tuple[float, ...]:
    """Levels of iterative pruning that removes `per_round` of the remaining weights each round:
    1 - (1 - per_round)^k for k = 1..rounds (e.g. 0.2 per round: 20%, 36%, 48.8%, ...)."""
    check_sparsity(per_round, "fraction pruned per round")
    return tuple(round(1.0 - (1.0 - per_round) ** k, 6) for k in range(1, rounds + 1))
