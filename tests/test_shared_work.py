"""Units of work shared by processes running the same job (ddfad_apps.storage.shared_work): resume, no duplicates."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from ddfad_apps.storage.shared_work import DONE_FILE, Unit, is_done, run_units


def _units(root: Path, log: Path, n: int = 6, pause: float = 0.0, fail_at: int | None = None) -> list[Unit[int]]:
    """``n`` units whose result is ``i * i``; every computation appends ``<i> <pid>`` to ``log``."""
    def compute(i: int) -> int:
        with open(log, "a") as f:
            f.write(f"{i} {os.getpid()}\n")
        time.sleep(pause)
        if i == fail_at:
            raise RuntimeError(f"unit {i} failed")
        return i * i

    return [Unit(root / f"u{i}", lambda i=i: compute(i), lambda r, f: (f / "r.txt").write_text(str(r)),
                 lambda f: int((f / "r.txt").read_text()), f"unit {i}") for i in range(n)]


def _computed(log: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_killed_run_resumes_without_redoing_finished_units(tmp_path):
    log = tmp_path / "log"
    with pytest.raises(RuntimeError, match="unit 3 failed"):
        run_units(_units(tmp_path / "w", log, fail_at=3), say=None)
    assert [i for i, _ in _computed(log)] == [0, 1, 2, 3]
    assert [is_done(tmp_path / "w" / f"u{i}") for i in range(6)] == [True] * 3 + [False] * 3
    log.unlink()
    assert run_units(_units(tmp_path / "w", log), say=None) == [i * i for i in range(6)]
    assert [i for i, _ in _computed(log)] == [3, 4, 5]  # only what was not finished


def test_a_partial_result_without_its_marker_is_recomputed_not_read(tmp_path):
    log = tmp_path / "log"
    partial = tmp_path / "w" / "u1"
    partial.mkdir(parents=True)
    (partial / "r.txt").write_text("999")  # a half-written result of a killed run: no DONE marker
    assert run_units(_units(tmp_path / "w", log, n=2), say=None) == [0, 1]
    assert (partial / DONE_FILE).is_file() and (partial / "r.txt").read_text() == "1"


def _worker(root: Path, log: Path, start: mp.Barrier, out: Path) -> None:
    start.wait()
    out.write_text(" ".join(map(str, run_units(_units(root, log, n=8, pause=0.3), say=None))))


def test_two_processes_with_the_same_job_split_the_units_and_both_get_every_result(tmp_path):
    ctx = mp.get_context("fork")
    start = ctx.Barrier(2)
    log = tmp_path / "log"
    outs = [tmp_path / "out0", tmp_path / "out1"]
    procs = [ctx.Process(target=_worker, args=(tmp_path / "w", log, start, out)) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    expected = " ".join(str(i * i) for i in range(8))
    assert [o.read_text() for o in outs] == [expected, expected]
    computed = _computed(log)
    assert sorted(i for i, _ in computed) == list(range(8))  # each unit once
    assert len({pid for _, pid in computed}) == 2  # and the work was shared
    assert not list((tmp_path / "w").rglob("*.lock"))  # no lock file is left beside the results


def test_a_helper_does_only_the_units_nobody_holds_or_finished_and_never_waits(tmp_path):
    from ddfad_apps.storage.locks import FileLock, lock_path
    from ddfad_apps.storage.shared_work import help_with_units

    log = tmp_path / "log"
    units = _units(tmp_path / "w", log, n=4)
    run_units(units[:1], say=None)  # unit 0 finished before
    held = FileLock(lock_path(units[2].folder), remove_on_release=True)
    assert held.acquire(blocking=False)  # unit 2 is another process's
    try:
        started = time.monotonic()
        assert help_with_units(units) == 2
        assert time.monotonic() - started < 5  # it did not wait for the held unit
    finally:
        held.release()
    assert [i for i, _ in _computed(log)] == [0, 1, 3] and not is_done(units[2].folder)
    assert run_units(units, say=None) == [0, 1, 4, 9]  # the holder's run loads the helper's results
    assert [i for i, _ in _computed(log)] == [0, 1, 3, 2]
