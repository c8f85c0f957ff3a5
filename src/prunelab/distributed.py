"""Several processes under torchrun: who am I, who writes, and waiting for each other."""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

WAIT = timedelta(hours=24)
"""How long a process waits for the others at a collective: under `--share images` the first
process may retrain a point for hours while the others wait for its network."""


def init_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); gloo on CPU, NCCL on GPUs.

    Returns:
        True when running as one of several processes.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=WAIT)
    return True


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """The process that prints, saves checkpoints and writes reports."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def my_slice(n: int) -> tuple[int, int]:
    """This process's consecutive share [start, stop) of `n` items (the first ones one larger)."""
    size, extra = divmod(n, world_size())
    start = rank() * size + min(rank(), extra)
    return start, start + size + (rank() < extra)


def broadcast(obj=None):
    """The first process's `obj`, in every process (pickled: objects of this run, never a file's);
    `obj` itself outside a torchrun."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj) -> list:
    """Every process's `obj`, in rank order, in every process."""
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def local_device(name: str) -> str:
    """Under torchrun on GPUs each process takes its own: 'auto'/'cuda' -> 'cuda:LOCAL_RANK'."""
    if dist.is_initialized() and torch.cuda.is_available() and name in ("auto", "cuda"):
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return name


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
