"""Damaged files are named, moved aside and rebuilt, never a traceback that names no file.

A truncated expert, checkpoint or feature cache (a full disk, a killed copy) used to make every later run fail
until someone found and deleted it by hand.  Now the loader that cannot read it renames it to
``<name>.corrupt-<timestamp>`` (kept for inspection; ``ddfad-apps cache clear`` removes it), warns with both
names, and the caller rebuilds the file as if it had never been there.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
CORRUPT_MARK = ".corrupt-"


class CorruptFileWarning(UserWarning):
    """A stored file could not be read; it was moved aside and will be rebuilt."""


def move_aside(path: str | os.PathLike, reason: str) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<timestamp>`` and warn, naming the file, why, and where it went."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}")
    n = 1
    while dest.exists():
        dest = path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}-{n}")
        n += 1
    os.replace(path, dest)
    warnings.warn(f"{path} is unreadable ({reason}); moved aside to {dest.name}, rebuilding it",
                  CorruptFileWarning, stacklevel=3)
    return dest


def load_or_move_aside(path: str | os.PathLike, load: Callable[[Path], T]) -> T | None:
    """``load(path)``; None when ``path`` does not exist, or when it cannot be read (it is then moved aside).

    ``load`` should also raise on content that reads but is wrong (missing keys, wrong shapes).  Errors of
    access (permissions, a folder in the way) are raised: moving the file would not fix them.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load(path)
    except (PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - torch, safetensors and pickle raise many types for a truncated file
        move_aside(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}"[:300])
        return None
