"""Several processes under torchrun: who am I, who writes, and waiting for each other."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


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
        dist.init_process_group(backend="nccl" if cuda else "gloo")
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


def local_device(name: str) -> str:
    """Under torchrun on GPUs each process takes its own: 'auto'/'cuda' -> 'cuda:LOCAL_RANK'."""
    if dist.is_initialized() and torch.cuda.is_available() and name in ("auto", "cuda"):
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return name


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
