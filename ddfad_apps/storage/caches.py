"""What ddfad-apps keeps in its cache folder, and trimming it safely: the engine of ``ddfad-apps cache``.

Every cache lives under one root (``$DDFAD_CACHE``, else ``~/.cache/ddfad-apps``, see
:func:`ddfad_apps.data.locate.cache_dir`) and nothing deletes its entries on its own, so it grows with every new
data set, feature setting and expert setting.  An entry is one child of a cache folder (a feature file, an
expert folder, a proxy set, a downloaded data set).  Clearing removes only paths inside the root, never follows
links, and skips what a running job holds: an entry whose lock (``<entry>.lock``, see :mod:`.locks`) is taken,
or a temporary file whose writer (the pid in its name) is alive.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ddfad_apps.data.locate import cache_dir
from ddfad_apps.distill.experts import expert_cache_dir
from ddfad_apps.features.cache import feature_cache_dir
from ddfad_apps.storage.atomic import TEMP_RE, temp_owner
from ddfad_apps.storage.corrupt import CORRUPT_MARK
from ddfad_apps.storage.locks import LOCK_SUFFIX, FileLock, is_locked, lock_path

DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class Cache:
    """One kind of cached thing: its name on the command line, its folder under the root, what it holds."""

    name: str
    folder: str
    what: str
    cleared_by_default: bool = True


def _relative(folder: Path) -> str:
    return folder.relative_to(cache_dir()).as_posix()


def known_caches() -> tuple[Cache, ...]:
    """The caches, their folders taken from the code that fills them (so the two cannot drift apart)."""
    return (
        Cache("features", _relative(feature_cache_dir()), "extracted FD-MFCC per split and feature settings"),
        Cache("experts", _relative(expert_cache_dir()), "MTT expert trajectories per training data and settings"),
        # ddfad_apps.nas.proxies.proxy_folder (not imported: it pulls in Optuna)
        Cache("nas-proxies", "nas/proxies", "distilled proxy sets made by `ddfad-apps nas`"),
        # ddfad_apps.nas.truths.CACHE_FOLDER (same reason)
        Cache("nas-truths", "nas/truths", "whole-data ground truths per data set and recipe (`ddfad-apps nas`)"),
        Cache("data", "data", "data sets fetched by `ddfad-apps data download` (only cleared when named)",
              cleared_by_default=False),
    )


CACHE_NAMES: tuple[str, ...] = tuple(c.name for c in known_caches())


@dataclass
class Entry:
    """One removable thing in a cache: ``kind`` is ``entry``, ``temporary`` or ``corrupt`` (moved aside)."""

    cache: str
    path: Path
    kind: str
    size: int
    files: int
    modified: float
    in_use: bool


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _usage(path: Path) -> tuple[int, int, float]:
    """Bytes, file count and last use under ``path`` (links counted, never followed).

    Last use is the newest modification time of its files or of its lock file: an exclusive holder writes its
    pid there, so loading a feature file or an expert (which locks it) counts as a use.
    """
    st = path.lstat()
    try:
        used = lock_path(path).stat().st_mtime
    except FileNotFoundError:
        used = 0.0
    if not path.is_dir() or path.is_symlink():
        return st.st_size, 1, max(st.st_mtime, used)
    size, files, newest = 0, 0, used
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                s = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:  # removed while we looked
                continue
            size, files, newest = size + s.st_size, files + 1, max(newest, s.st_mtime)
    return size, files, newest or st.st_mtime


def entries(cache: Cache, root: Path | None = None) -> list[Entry]:
    """Everything in ``cache`` but lock files, sorted by name."""
    folder = (root or cache_dir()) / cache.folder
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(LOCK_SUFFIX):
            continue
        try:
            size, files, modified = _usage(path)
        except FileNotFoundError:
            continue
        if TEMP_RE.match(path.name) and path.is_file():
            pid = temp_owner(path)
            found.append(Entry(cache.name, path, "temporary", size, files, modified,
                               pid is not None and _pid_alive(pid)))
        elif CORRUPT_MARK in path.name:
            found.append(Entry(cache.name, path, "corrupt", size, files, modified, False))
        else:
            found.append(Entry(cache.name, path, "entry", size, files, modified, is_locked(path)))
    return found


def select(names: list[str] | tuple[str, ...] = ()) -> list[Cache]:
    """The caches called ``names`` ('all' for every one); none named: those cleared by default."""
    caches = known_caches()
    if not names:
        return [c for c in caches if c.cleared_by_default]
    unknown = sorted(set(names) - set(CACHE_NAMES) - {"all"})
    if unknown:
        raise ValueError(f"unknown cache(s) {unknown}; choose from {', '.join(CACHE_NAMES)} or all")
    return list(caches) if "all" in names else [c for c in caches if c.name in names]


def plan(caches: list[Cache], older_than_days: float | None = None, root: Path | None = None,
         now: float | None = None) -> list[Entry]:
    """The entries of ``caches`` that clearing would consider (not used for ``older_than_days``, if given)."""
    cutoff = None if older_than_days is None else (now or time.time()) - older_than_days * DAY_SECONDS
    return [e for c in caches for e in entries(c, root) if cutoff is None or e.modified < cutoff]


def _remove(path: Path, root: Path) -> None:
    """Delete ``path`` (a link itself, never its target) after checking it lies inside ``root``."""
    where = path.parent.resolve()
    if not where.is_relative_to(root.resolve()):
        raise ValueError(f"{path} is not inside the cache root {root} (a linked folder?); not deleting it")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _sweep_locks(folder: Path) -> None:
    """Remove lock files whose entry is gone and that nobody holds (deleted while held: see :mod:`.locks`)."""
    if not folder.is_dir():
        return
    for lock_file in folder.glob(f"*{LOCK_SUFFIX}"):
        if lock_file.with_name(lock_file.name[: -len(LOCK_SUFFIX)]).exists():
            continue
        lock = FileLock(lock_file, remove_on_release=True)
        if lock.acquire(blocking=False):
            lock.release()


def clear(todo: list[Entry], root: Path | None = None) -> tuple[list[Entry], list[Entry]]:
    """Remove the planned entries; returns (removed, skipped because a running job holds them)."""
    root = root or cache_dir()
    removed, skipped = [], []
    for entry in todo:
        if entry.kind == "temporary":
            if entry.in_use:
                skipped.append(entry)
                continue
            _remove(entry.path, root)
            removed.append(entry)
            continue
        lock = FileLock(lock_path(entry.path), remove_on_release=True)
        if not lock.acquire(blocking=False):  # a job is writing or using it
            skipped.append(entry)
            continue
        with lock:
            _remove(entry.path, root)
        removed.append(entry)
    for folder in {e.path.parent for e in todo}:
        _sweep_locks(folder)
    return removed, skipped
