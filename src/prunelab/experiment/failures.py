"""One line for a run file the OS or SQLite would not write or read: the path, the reason, what to
do; a full disk reads as a full disk, never as a corrupt file."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from ..errors import PrunelabError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# SQLite's result codes (sqlite3.h) that say the file could not be read or written, not that it is
# corrupt: PERM BUSY LOCKED NOMEM READONLY IOERR CANTOPEN
_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_IO = 13, 10, {3, 5, 6, 7, 8, 10, 14}


def _nearly_full(path) -> bool:
    """Whether the disk holding `path` has under 1 MiB free: SQLite says 'disk I/O error' when it
    cannot grow its shared-memory file on a full disk (SQLITE_IOERR_SHMSIZE), not 'disk is full'."""
    folder = Path(path).parent if path is not None else Path.cwd()
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def _primary(exc: BaseException) -> int | None:
    """SQLite's primary result code of an error (its extended code's low byte), None for others."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def disk_not_file(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed for the disk's sake (full, I/O, permissions), not a damaged file."""
    code = _primary(exc)
    return code == _SQLITE_FULL or code in _SQLITE_IO or "disk is full" in str(exc)


def os_failure(exc: OSError | sqlite3.Error, path: str | os.PathLike | None = None,
               action: str | None = "write") -> PrunelabError:
    """One line for a run file that could not be written (or read): the path, the reason the OS or
    SQLite gave, and what to do. A full disk reads as a full disk, never as a corrupt file.

    Args:
        exc: the error raised (an OSError, or a sqlite3.Error of the results store).
        path: the file; else the OSError's own `filename`.
        action: "write" or "read", for the line; None: "write" for a full disk or read-only
            folder, else "access" (an error caught far from its writer).
    """
    path = path if path is not None else getattr(exc, "filename", None)
    if isinstance(exc, sqlite3.Error):
        code = _primary(exc)
        full = (code == _SQLITE_FULL or "disk is full" in str(exc)
                or (code == _SQLITE_IOERR and _nearly_full(path)))
        name = getattr(exc, "sqlite_errorname", None)
        said = f"SQLite: {exc}" + (f", {name}" if name else "")
        reason = f"no space left on device ({said})" if full else said
        number = errno.ENOSPC if full else (errno.EACCES if code in (3, 8) else None)
    else:
        reason, number = exc.strerror or str(exc), exc.errno
    if action is None:
        action = "write" if number in (*_NO_SPACE, errno.EROFS) else "access"
    where = Path(path).parent if path is not None else None
    if number in _NO_SPACE:
        disk = f"the disk holding {where}" if where is not None else "the disk"
        hint = f"free space on {disk} and run the same command again"
    elif number in _NOT_WRITABLE:
        hint = f"make {where or 'it'} writable (or pass another --out) and run the same command again"
    else:
        hint = "fix that and run the same command again"
    head = f"cannot {action} {path}" if path is not None else f"cannot {action} a file"
    return PrunelabError(f"{head}: {reason}; {hint}; results stored so far are kept")
