"""Writing a file whole or not at all: a temporary beside it, synced, then one rename; the
temporary is removed if anything fails (a full disk included), and the file gets the mode the
umask allows (safetensors, like mkstemp, would leave it 0600: unreadable to the rest of a group)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save


def umask_mode() -> int:
    """The mode a plain `open(..., 'w')` would give a new file under this process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: Path, path: Path) -> None:
    """Give the written temporary `tmp` the umask's mode and rename it to `path`."""
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)


def write_whole(path: str | os.PathLike, data, tmp: Path | None = None) -> None:
    """Write the bytes `data` to `path` through `tmp` (default `path` + '.tmp'), synced before the
    rename; on any failure the temporary is removed and the error raised as it came."""
    path = Path(path)
    tmp = tmp or path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_tensors(path: str | os.PathLike, state: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """safetensors, written whole: the bytes are made in memory first, so a full disk is an
    OSError like any other write's (safetensors' own file writer raises its own error type)."""
    write_whole(path, save(state, metadata=metadata))
