"""The container prunelab's own binary formats share: 16 magic bytes, a little-endian u32 header
length, the header, then the body; written atomically, read back with one-line errors."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from ...errors import PrunelabError
from ..atomic import write_whole


def write_framed(path: str | os.PathLike, magic: bytes, head: bytes, body: bytes) -> int:
    """Write magic + header length + `head` + `body` to `path` through a temporary file that is
    removed if anything fails; returns the file's bytes."""
    write_whole(path, magic + struct.pack("<I", len(head)) + head + body)
    return Path(path).stat().st_size


def read_framed(path: Path, magic: bytes, kind: str) -> tuple[bytes, bytes]:
    """(header, body) of a file written by `write_framed` with `magic`; `kind` names the format
    in the errors ('sparse': "... is not a prunelab sparse file")."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PrunelabError(f"cannot read {path}: {exc}") from None
    if not data.startswith(magic):
        raise PrunelabError(f"{path} is not a prunelab {kind} file (wrong magic bytes)")
    start = len(magic) + 4
    if len(data) < start:
        raise PrunelabError(f"{path} is a damaged prunelab {kind} file (cut short in its header length)")
    (n,) = struct.unpack_from("<I", data, len(magic))
    return data[start:start + n], data[start + n:]
