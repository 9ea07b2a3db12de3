"""Safe files on disk: one writer per entry (:mod:`.locks`), atomic writes under per-process temporary names
(:mod:`.atomic`), damaged files moved aside and rebuilt (:mod:`.corrupt`), and the inventory behind
``ddfad-apps cache`` (:mod:`.caches`)."""

from ddfad_apps.storage.atomic import atomic_write, temp_path
from ddfad_apps.storage.corrupt import (
    CorruptFileWarning,
    load_or_move_aside,
    move_aside,
)
from ddfad_apps.storage.locks import FileLock, is_locked, lock_path, locked

__all__ = [
    "CorruptFileWarning", "FileLock", "atomic_write", "is_locked", "load_or_move_aside", "lock_path", "locked",
    "move_aside", "temp_path",
]
