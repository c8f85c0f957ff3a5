"""One command at a time per run folder: an exclusive lock on RUN/.lock while it computes there.
Two processes in one folder used to compute every point twice, and two retraining sweeps deleted
each other's training states. The lock is the kernel's (flock): a killed holder releases it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .. import distributed
from ..errors import PrunelabError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, option: str | None = "--out") -> Iterator[None]:
    """Hold the run folder's lock inside; a second holder stops at once with one line. Under
    torchrun the processes of one job share the folder: the first one holds the lock for all.
    `option` named the folder (None: an argument the user cannot point elsewhere), for the lines."""
    folder = Path(folder)
    created = not folder.exists()
    elsewhere = f"pass another {option}" if option else "use a writable copy of the run"
    try:
        with _flock(folder / LOCK_FILE, wait=False, elsewhere=elsewhere) as holder:
            if holder is not None:
                raise PrunelabError(f"run folder {folder} is in use by another prunelab process (pid "
                                    f"{holder}); wait for it to finish"
                                    f"{f', or pass another {option}' if option else ''}")
            yield
    except PrunelabError:
        if created and distributed.is_main() and _nothing_stored(folder):
            shutil.rmtree(folder, ignore_errors=True)  # a refusal leaves no folder it made behind
        raise


def _nothing_stored(folder: Path) -> bool:
    """The run folder holds no stored point (none of its files is anything a user would miss)."""
    from .store import STORE_FILE, Store

    if not (folder / STORE_FILE).exists():
        return True
    try:
        store = Store.open(folder)
    except PrunelabError:
        return False
    try:
        return not store.keys()
    finally:
        store.close()


@contextlib.contextmanager
def report_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of a report folder (beside it) inside, waiting while another process writes
    that report (seconds): two reports never clear each other's temporary folders. A report may
    be written while a sweep computes in the run folder (it reads what is stored so far)."""
    folder = Path(folder)
    lock = folder.parent / f".{folder.name}.lock"
    with _flock(lock, wait=True, elsewhere="use a writable copy of the run"):
        yield


@contextlib.contextmanager
def _flock(path: Path, wait: bool, elsewhere: str) -> Iterator[str | None]:
    """Lock `path` (created) inside and yield None; without `wait`, when another process holds it,
    yield that holder's pid instead (as it wrote it)."""
    if not distributed.is_main():
        yield None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise PrunelabError(f"cannot write the run folder {path.parent}: {exc.strerror}; make it writable "
                            f"or {elsewhere}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield None
    finally:
        os.close(fd)  # releases the lock
