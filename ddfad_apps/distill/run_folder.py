"""The output folder of one distillation run: what it was asked to do, and how far it got.

``run.json`` is written first and names the request (data set, method, CPC, model, preset, seed, settings).
A folder whose ``run.json`` names another request is refused (unless forced), so a typo in ``--out`` can
never overwrite an earlier result; a folder with the same request resumes from its checkpoint, and one that
already holds ``distilled.json`` (written last, see :class:`SyntheticSet`) is complete.

Every folder made here carries the marker ``.ddfad-run``; ``--force`` replaces only folders with that marker,
never one that merely holds a ``run.json`` (another tool's, or a folder a user filled by hand).  A process that
prepares a folder keeps it locked (``.ddfad-run.lock``) until it exits, so a second identical run waits for the
first and then finds its result complete, instead of writing into the same folder at the same time.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ddfad_apps.distill.synthetic_set import META_FILE
from ddfad_apps.storage import FileLock, atomic_write

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pt"
MARKER_FILE = ".ddfad-run"
MARKER_TAG = "ddfad-apps distillation run folder"
LOCK_FILE = ".ddfad-run.lock"
State = Literal["new", "resume", "complete"]

# run folders this process holds (resolved path -> lock), kept until release_run_folder() or process exit
_HELD: dict[Path, FileLock] = {}


class ForeignRunError(FileExistsError):
    """The output folder holds a different run (or other files)."""


def _jsonable(request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(request, sort_keys=True, default=str))


def is_marked(out: Path) -> bool:
    """Whether ``out`` was made by :func:`prepare_run_folder` (carries the toolkit's marker)."""
    try:
        return (out / MARKER_FILE).read_text().startswith(MARKER_TAG)
    except (OSError, UnicodeDecodeError):
        return False


def _contents(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.name != LOCK_FILE] if out.is_dir() else []


def _previous(out: Path) -> dict[str, Any] | None:
    """The request in ``out/run.json``; None when there is none; a clear error when it cannot be read."""
    run_file = out / RUN_FILE
    if not run_file.exists():
        return None
    try:
        previous = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ForeignRunError(f"{run_file} is unreadable ({exc}); choose another --out, or pass --force to "
                              "replace the folder") from exc
    if not isinstance(previous, dict):
        raise ForeignRunError(f"{run_file} does not hold a request (a JSON object); choose another --out")
    return previous


def _check(out: Path, request: dict[str, Any], force: bool) -> State | None:
    """What ``out`` holds for ``request``: a state to return, None when it must be (re)made, or an error."""
    if out.exists() and not out.is_dir():
        raise ForeignRunError(f"{out} exists and is not a folder")
    contents = _contents(out)
    if not contents:
        return None
    marked = is_marked(out)
    if not (out / RUN_FILE).exists() and not marked:
        raise ForeignRunError(
            f"{out} is not empty and holds no {RUN_FILE}: it is not a ddfad-apps distillation folder; "
            "choose another --out"
        )
    try:
        previous = _previous(out)
    except ForeignRunError:
        if force and marked:
            return None
        raise
    if previous == request:
        return "complete" if (out / META_FILE).exists() else "resume"
    if previous is None and {p.name for p in contents} <= {MARKER_FILE}:
        return None  # an earlier prepare stopped between marker and request: nothing to keep
    if not force:
        if previous is None:
            raise ForeignRunError(f"{out} holds no {RUN_FILE} (an interrupted run?); choose another --out, or "
                                  "pass --force to replace it")
        changed = sorted(k for k in set(previous) | set(request) if previous.get(k) != request.get(k))
        raise ForeignRunError(
            f"{out} holds a different run (differs in: {', '.join(changed)}); choose another --out, or pass "
            "--force to replace it"
        )
    if not marked:
        raise ForeignRunError(
            f"{out} holds a {RUN_FILE} but not the {MARKER_FILE} marker this toolkit writes in its run folders, so "
            "--force will not delete it (another tool's folder, or one made by an older ddfad-apps); delete it "
            "yourself or choose another --out"
        )
    return None


def _empty(out: Path) -> None:
    """Delete everything in ``out`` but its lock file (held by us), never following links."""
    for child in _contents(out):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _lock(out: Path, on_wait: Callable[[str], None] | None) -> None:
    key = out.resolve()
    if key in _HELD:
        return
    lock = FileLock(out / LOCK_FILE)
    lock.acquire(on_wait=on_wait or (lambda msg: print(msg, file=sys.stderr, flush=True)))
    _HELD[key] = lock


def release_run_folder(out: str | Path) -> None:
    """Let other processes use ``out`` before this one exits (the lock also goes when the process ends)."""
    lock = _HELD.pop(Path(out).resolve(), None)
    if lock is not None:
        lock.release()


def prepare_run_folder(out: str | Path, request: dict[str, Any], force: bool = False,
                       on_wait: Callable[[str], None] | None = None) -> State:
    """Make ``out`` ready for ``request``; returns whether the run is new, to be resumed, or already complete.

    ``force`` empties a folder that holds another run of ours (marked), never a folder without the marker.
    The folder is locked for this process until it exits (or :func:`release_run_folder`); if another process
    holds it, this waits (``on_wait`` gets a message once) and then looks again at what that process left.
    """
    out = Path(out)
    request = _jsonable(request)
    _check(out, request, force)  # refuse a foreign folder at once, before waiting and before writing into it
    out.mkdir(parents=True, exist_ok=True)
    _lock(out, on_wait)
    state = _check(out, request, force)  # again under the lock: the holder we waited for may have changed it
    if state is not None:
        if not is_marked(out):  # a folder of an older ddfad-apps holding this very request: adopt it
            atomic_write(out / MARKER_FILE, lambda tmp: tmp.write_text(MARKER_TAG + "\n"))
        return state
    _empty(out)
    atomic_write(out / MARKER_FILE, lambda tmp: tmp.write_text(MARKER_TAG + "\n"))
    atomic_write(out / RUN_FILE, lambda tmp: tmp.write_text(json.dumps(request, indent=2, sort_keys=True)))
    return "new"


def read_request(out: str | Path) -> dict[str, Any]:
    """The request a run folder was made for (raises a clear error when ``out`` is not a run folder)."""
    run_file = Path(out) / RUN_FILE
    if not run_file.exists():
        raise FileNotFoundError(f"{out} is not a ddfad-apps distillation folder (no {RUN_FILE})")
    return json.loads(run_file.read_text())
