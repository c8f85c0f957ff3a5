"""Writing a file whole or not at all: a temporary beside it, then one rename; the temporary is
removed if anything fails (a full disk included), and the file gets the mode the umask allows
(safetensors, like mkstemp, would leave it 0600: unreadable to the rest of a shared group)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file


def umask_mode() -> int:
    """The mode a plain `open(..., 'w')` would give a new file under this process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: Path, path: Path) -> None:
    """Give the written temporary `tmp` the umask's mode and rename it to `path`."""
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)


def save_tensors(path: str | os.PathLike, state: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """safetensors `save_file`, atomically and with the umask's mode."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(state, str(tmp), metadata=metadata)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
