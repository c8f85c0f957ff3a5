"""A training schedule sized to a time budget, and progressive resizing: pure functions of the
recipe and measured step times (the measuring is in `budget.py`)."""

from __future__ import annotations

import math
import re

from ..errors import PrunelabError

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int) -> float:
    """'8h', '90m', '45min', '3600s' or a bare number of seconds -> seconds (> 0)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", str(text))
        if not match:
            raise PrunelabError(f"time budget '{text}' is not a duration; write it as 8h, 90m or 3600s")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not 0 < seconds < math.inf:
        raise PrunelabError(f"time budget must be a positive duration, got {text!r}")
    return seconds


def parse_sizes(text: str) -> tuple[tuple[int, float], ...]:
    """'16:0.4,24:0.3' -> ((16, 0.4), (24, 0.3)): the first 40% of the epochs at 16x16 pixels, the
    next 30% at 24x24, the rest at the images' own size. '' -> () (no resizing)."""
    pairs = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            size, share = part.split(":")
            pairs.append((int(size), float(share)))
        except ValueError:
            raise PrunelabError(f"progressive sizes '{text}': '{part}' is not SIZE:FRACTION "
                                f"(e.g. 16:0.4,24:0.3)") from None
    check_sizes(tuple(pairs))
    return tuple(pairs)


def check_sizes(sizes: tuple[tuple[int, float], ...]) -> None:
    """Sizes >= 4 pixels, each share in (0, 1], shares summing to at most 1."""
    for size, share in sizes:
        if size < 4 or not 0 < share <= 1:
            raise PrunelabError(f"progressive size {size}:{share}: sizes must be >= 4 pixels and each "
                                f"fraction of the epochs in (0, 1]")
    if sum(share for _, share in sizes) > 1 + 1e-9:
        raise PrunelabError(f"progressive sizes take {sum(s for _, s in sizes):.2f} of the epochs; "
                            f"their fractions must sum to at most 1 (the rest trains at full size)")


def size_at(epoch: int, epochs: int, sizes: tuple[tuple[int, float], ...], full: int) -> int:
    """The image size epoch `epoch` (0-based) of `epochs` trains at: each (size, share) in turn
    takes round(share * epochs) epochs (counted cumulatively), the rest train at `full`."""
    done = 0.0
    for size, share in sizes:
        done += share
        if epoch < round(done * epochs):
            return min(size, full)
    return full


def epochs_within(budget_s: float, epoch_s: dict[int, float], sizes: tuple[tuple[int, float], ...],
                  full: int, most: int = 10_000) -> int:
    """The most epochs whose measured cost (`epoch_s`: seconds of one epoch at each size, its
    evaluation included) fits in `budget_s`; 0 when not even one does."""
    def cost(epochs: int) -> float:
        return sum(epoch_s[size_at(e, epochs, sizes, full)] for e in range(epochs))

    low, high = 0, most  # cost grows with the epochs (up to the rounding of the shares)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cost(mid) <= budget_s else (low, mid - 1)
    return low
