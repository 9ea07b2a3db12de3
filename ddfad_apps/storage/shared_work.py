"""Units of work that several processes running the same job share: each unit is done once and kept on disk.

Long benchmarks (make a set per seed, then evaluate it) are lists of independent units.  Keeping each unit's
result in its own folder gives two things the standards ask of long jobs:

- **resume**: a killed run loses only the unit it was doing (a unit counts as done only once its ``DONE`` marker
  is written, after its result), so the same command started again picks up where it stopped;
- **no duplicated work**: two processes started with the same command split the units.  A unit is claimed with
  a non-blocking lock; a process that finds one claimed goes on with the others and comes back at the end, by
  which time it only loads the result (or does the unit itself if its holder died: the kernel drops a dead
  process's lock).

A unit's ``compute`` may itself run other units (an evaluation runs the unit that makes its set): locks on
different folders nest safely.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ddfad_apps.storage.atomic import atomic_write
from ddfad_apps.storage.locks import FileLock, lock_path, locked

T = TypeVar("T")
DONE_FILE = "DONE"


@dataclass(frozen=True)
class Unit(Generic[T]):
    """One piece of work: ``compute()`` makes the result, ``save(result, folder)`` writes it, ``load(folder)`` reads it
    back.  ``folder`` must name exactly the inputs and settings behind the result (e.g. a settings digest)."""

    folder: Path
    compute: Callable[[], T]
    save: Callable[[T, Path], None]
    load: Callable[[Path], T]
    label: str = ""


def is_done(folder: Path) -> bool:
    """Whether the unit kept in ``folder`` finished (its marker is written last)."""
    return (Path(folder) / DONE_FILE).is_file()


def _do(unit: Unit[T]) -> T:
    """Run ``unit`` while holding its lock: load it if another process finished it meanwhile, else compute it."""
    if is_done(unit.folder):
        return unit.load(unit.folder)
    if unit.folder.exists():  # a killed run's partial result: never mistaken for a finished one
        shutil.rmtree(unit.folder)
    result = unit.compute()
    unit.folder.mkdir(parents=True, exist_ok=True)
    unit.save(result, unit.folder)
    atomic_write(unit.folder / DONE_FILE, lambda tmp: tmp.write_text(unit.label + "\n"))
    return result


def _free_units(units: Sequence[Unit[T]], load_done: bool) -> tuple[dict[int, T], list[int]]:
    """One pass over ``units`` that never waits: each unit nobody holds is done here (or loaded, if another
    process finished it meanwhile), a finished one is loaded when ``load_done``; returns those results by index
    and the indices of the units another process holds."""
    results: dict[int, T] = {}
    held: list[int] = []
    for i, unit in enumerate(units):
        if is_done(unit.folder):
            if load_done:
                results[i] = unit.load(unit.folder)
            continue
        lock = FileLock(lock_path(unit.folder), remove_on_release=True)  # no lock files left beside results
        if not lock.acquire(blocking=False):
            held.append(i)  # another process is on it
            continue
        try:
            results[i] = _do(unit)
        finally:
            lock.release()
    return results, held


def help_with_units(units: Sequence[Unit[T]]) -> int:
    """Do the units of ``units`` that no process has finished or holds, and wait for none (the work another
    process is running: it will load what was done here); returns how many units this call took."""
    return len(_free_units(units, load_done=False)[0])


def run_units(units: Sequence[Unit[T]], say: Callable[[str], None] | None = print) -> list[T]:
    """The results of ``units`` in order, each computed at most once across processes (see the module doc)."""
    results, deferred = _free_units(units, load_done=True)  # the held ones come last: do the rest first
    for i in deferred:
        unit = units[i]
        with locked(unit.folder, on_wait=say, remove_on_release=True):
            results[i] = _do(unit)
    return [results[i] for i in range(len(units))]
