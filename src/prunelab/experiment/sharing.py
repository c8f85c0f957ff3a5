"""One evaluation split over the processes of a torchrun (`--share images`): the first process
computes every point and sends each network to the others; every process scores its consecutive
slice of the test images, and the slices are joined in image order, so the counts are exactly
those of one process. The other processes prune, train and store nothing."""

from __future__ import annotations

import io

import torch
from torch import nn

from .. import distributed
from ..data.source import Source
from ..errors import PrunelabError
from ..measure.accuracy import Evaluation, evaluate_batches

_DONE = "done"


def evaluate_shared(model: nn.Module, test: Source, batch_size: int, device: torch.device) -> Evaluation:
    """On the first process: `model`'s evaluation on `test`, every process scoring its slice."""
    buffer = io.BytesIO()
    try:
        torch.save(model, buffer)
    except Exception as exc:  # noqa: BLE001 - a module that cannot be sent: the others stop, one line here
        distributed.broadcast(_DONE)
        raise PrunelabError(f"--share images sends each network to the other processes, and this one "
                            f"cannot be pickled ({type(exc).__name__}: {str(exc)[:120]}); use --share "
                            f"points") from None
    distributed.broadcast(buffer.getvalue())
    return _score_my_slice(model, test, batch_size, device)


def serve(test: Source, batch_size: int, device: torch.device) -> None:
    """On the other processes: score a slice for each network the first process sends, until it
    says it is done (`stop_serving`)."""
    while isinstance(payload := distributed.broadcast(), bytes):
        # weights_only=False: the bytes are a network this run's first process pickled a moment
        # ago, over the process group, never a file
        model = torch.load(io.BytesIO(payload), map_location=device, weights_only=False)
        try:
            _score_my_slice(model, test, batch_size, device)
        except PrunelabError:  # the first process reports it, and says what comes next
            continue


def stop_serving() -> None:
    """On the first process, when it has no more points: the others' `serve` returns."""
    distributed.broadcast(_DONE)


def _score_my_slice(model: nn.Module, test: Source, batch_size: int, device: torch.device) -> Evaluation:
    start, stop = distributed.my_slice(len(test))
    mine: Evaluation | str | None = None
    if stop > start:
        try:
            mine = evaluate_batches(model, test.part(start, stop).batches(batch_size, device))
        except PrunelabError as exc:  # told to every process, so none is left waiting
            mine = f"{exc} (images {start}..{stop - 1})"
    parts = distributed.all_gather(mine)
    failed = [p for p in parts if isinstance(p, str)]
    if failed:
        raise PrunelabError(failed[0])
    return Evaluation.joined([p for p in parts if p is not None])
