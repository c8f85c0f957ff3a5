"""Where a command may write: never onto or into what it reads, a checkpoint folder, or a run
folder's own files (its store, config, kept models, report...)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import PrunelabError
from ..io.checkpoint import INDEX_FILE, META_FILE, WEIGHTS_FILE
from .lock import LOCK_FILE
from .runfolder import CONFIG_FILE, LATENCY_TABLE_FILE, PROFILE_FILE, REPORT_DIR
from .store import STORE_FILE

# What a run folder holds of its own: anything written there by another command is lost or loses it.
RUN_OWNED = frozenset({STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", f"{STORE_FILE}-journal",
                       CONFIG_FILE, LATENCY_TABLE_FILE, PROFILE_FILE, REPORT_DIR, "models", "partial",
                       "chains", "tb", LOCK_FILE, f".{REPORT_DIR}.lock", "sensitivity.png",
                       "sensitivity.svg"})
CHECKPOINT_FILES = (META_FILE, WEIGHTS_FILE, INDEX_FILE)


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def is_checkpoint_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in CHECKPOINT_FILES)


def check_destination(out: str | os.PathLike, reads: Iterable[str | os.PathLike | None] = (),
                      option: str = "--out", kind: str = "file") -> None:
    """Refuse, in one line and before anything is written, a destination that is or lies inside a
    file or folder the command reads, a checkpoint folder, or a run folder's own files.

    Args:
        out: the file or folder the command would write.
        reads: the paths it reads (checkpoint, data, config...); None and names such as 'digits'
            that are not paths on disk are skipped.
        option: the option that named `out`, for the line.
        kind: what `out` is: "file", "run" (a run folder: `out` may be one already) or
            "checkpoint" (a training's folder: `out` may be a checkpoint folder already).
    """
    target = _real(out)
    for given in reads:
        if given is None or not os.path.exists(given):
            continue
        source = _real(given)
        if target == source or source in target.parents:
            where = "is" if target == source else "lies inside"
            raise PrunelabError(f"{option} {out} {where} {given}, which this command reads; writing there "
                                f"would destroy it: pass another {option}")
    if is_checkpoint_folder(target) and kind != "checkpoint":
        raise PrunelabError(f"{option} {out} is a checkpoint folder; its files are not to be replaced: "
                            f"pass another {option}")
    if (target / STORE_FILE).is_file() and kind != "run":
        raise PrunelabError(f"{option} {out} is a run folder (it holds {STORE_FILE}); its files are not "
                            f"to be replaced: pass another {option}")
    for folder in target.parents:
        if is_checkpoint_folder(folder):
            raise PrunelabError(f"{option} {out} lies inside the checkpoint folder {folder}; its files "
                                f"are not to be replaced: pass an {option} outside it")
        part = target.relative_to(folder).parts[0]
        if (folder / STORE_FILE).is_file() and part in RUN_OWNED:
            raise PrunelabError(f"{option} {out} is the run folder {folder}'s own '{part}'; writing there "
                                f"would destroy the run's results: pass an {option} outside it (or "
                                f"another name beside them)")
