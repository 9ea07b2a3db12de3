"""Atomic writes: bytes go to a temporary name unique to this process and call, then are renamed into place.

A fixed temporary name (``.x.tmp``) lets two processes write into the same file and rename each other's half
written data; with the pid and a random suffix in the name each writer has its own, and an interrupted write
never leaves a file that looks complete.  The pid also tells ``ddfad-apps cache clear`` whether a leftover
temporary file still belongs to a running process.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

# ".<name>.<pid>-<hex>.tmp", as made by temp_path; older versions wrote ".<name>.<pid>.tmp" or ".<name>.tmp"
TEMP_RE = re.compile(r"^\..+?(?:\.(?P<pid>\d+)(?:-[0-9a-f]+)?)?\.tmp$")


def temp_path(path: str | os.PathLike) -> Path:
    """A temporary name beside ``path``: ``.<name>.<pid>-<random>.tmp`` (hidden, never a valid cache entry)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def temp_owner(path: str | os.PathLike) -> int | None:
    """The pid in a temporary file's name, or None when the name is not one of ours or carries no pid."""
    match = TEMP_RE.match(Path(path).name)
    return int(match["pid"]) if match and match["pid"] else None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary file, then rename it to ``path`` (the temporary goes on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
