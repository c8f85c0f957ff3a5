"""One command at a time per run folder: an exclusive lock on RUN/.lock while it computes there.
Two processes in one folder used to compute every point twice, and two retraining sweeps deleted
each other's training states. The lock is the kernel's (flock): a killed holder releases it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .. import distributed
from ..errors import PrunelabError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the run folder's lock inside; a second holder stops at once with one line. Under
    torchrun the processes of one job share the folder: the first one holds the lock for all."""
    if not distributed.is_main():
        yield
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise PrunelabError(f"cannot write the run folder {folder}: {exc.strerror}; "
                            f"pass a writable --out") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise PrunelabError(f"run folder {folder} is in use by another prunelab process (pid {holder}); "
                                f"wait for it to finish, or pass another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
