"""Reproduce the paper: run every declared cell not already saved, then write the report.

    from ddfad_apps.paper import reproduce
    done = reproduce("smoke", Path("/tmp/paper"))          # REPORT.md, figures, raw/<cell>.json
    print(done.ran, done.skipped, done.report)

Cells run in declared order (sets before the cells that read them); each is saved as soon as it is done, so an
interrupted run resumes at the first missing cell (and inside a set cell, at its first missing set or evaluation).
Two runs started into the same folder split the cells between them, each cell claimed by a lock; the run that
finds a cell held joins its work where it can be shared (``JOINERS``: a set cell's sets nobody has started, Fig.
8's studies) before it goes on to the next cell.  ``workers=N`` starts N - 1 such runs itself (processes of one
thread each, by default one per core: small networks train faster one thread a process than two threads in one)
and writes the report once all are done.  Data sets are checked before any work starts.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ddfad_apps.paper.cells import SIZES, Cell, declare
from ddfad_apps.paper.execute import JOINERS, RUNNERS, Context, measure
from ddfad_apps.paper.store import CellStore, stale
from ddfad_apps.storage.locks import FileLock, lock_path, locked


class ReproduceError(ValueError):
    """A request the report cannot honour (unknown size, missing data set), raised before any work."""


@dataclass
class Reproduction:
    """Which cells ran and which were reused, every cell's record, and where the report went."""

    size: str
    ran: list[str]
    skipped: list[str]
    records: dict[str, dict[str, Any]]
    report: Path
    ran_by: dict[str, list[str]] = field(default_factory=dict)  # which process computed what: "main", "worker 1", ...


def cpu_model() -> str | None:
    """The CPU's model name (Linux), recorded because the same seeds give other floats on another CPU: a set
    evaluated again on another machine moved by up to ~2 points (scripts/recheck_report.py)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine(device: torch.device) -> dict[str, Any]:
    """The machine a cell ran on, recorded with its result."""
    return {"platform": platform.platform(), "cpu": cpu_model(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def git_commit() -> str | None:
    """The checkout's commit (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def check_data(cells: list[Cell], data_root: Path | None) -> None:
    """Every data set the cells read must be found, before any work starts."""
    from ddfad_apps.data.registry import list_clips

    for dataset in sorted({c.params["dataset"] for c in cells}):
        try:
            list_clips(dataset, "train", data_root)
        except (FileNotFoundError, ValueError) as exc:
            raise ReproduceError(f"data set {dataset!r} is needed by the report but cannot be read: {exc} "
                                 "(--datasets restricts Table I's data sets)") from exc


def default_workers(device: str = "auto") -> int:
    """One process per usable core on the CPU (at most 8: each holds ~2 GB), one on a GPU."""
    from ddfad_apps.jobs.data import open_device

    if open_device(device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


def _worker(index: int, size: str, out: Path, data_root: Path | None, device: str, tracking_uri: str | None,
            datasets: tuple[str, ...] | None, threads: int, done: Any) -> None:
    """A spawned run of the same cells (no report, no progress bar); puts the keys it computed on ``done``."""
    torch.set_num_threads(threads)
    name = f"worker {index}"
    result = reproduce(size, out, data_root, device, tracking_uri, datasets, progress=False,
                       say=lambda line: print(f"[{name}] {line}", flush=True), write=False)
    done.put((name, result.ran))


def _start_workers(n: int, *args: Any) -> tuple[list[Any], Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools or locks
    done = ctx.SimpleQueue()
    procs = [ctx.Process(target=_worker, args=(i, *args, done), name=f"reproduce-worker-{i}") for i in range(1, n)]
    for proc in procs:
        proc.start()
    return procs, done


def reproduce(size: str, out: Path, data_root: Path | None = None, device: str = "auto",
              tracking_uri: str | None = None, datasets: tuple[str, ...] | None = None, command: str = "",
              progress: bool = True, say: Callable[[str], None] = print, run: bool = True, workers: int = 1,
              write: bool = True) -> Reproduction:
    """Run (or reuse) every cell of ``size`` into ``out`` and write its report (``out/REPORT.md``; the extended
    size's ``REPORT-extended.md``); with ``run=False``, only write the report of the cells saved so far (a partial
    report says which cells it lacks).  ``workers`` > 1 runs the cells in that many processes of
    ``torch.get_num_threads()`` threads each; ``write=False`` writes no report."""
    from tqdm.auto import tqdm

    from ddfad_apps.jobs.data import open_device
    from ddfad_apps.paper.report import write_report

    if size not in SIZES:
        raise ReproduceError(f"unknown size {size!r}; use one of {', '.join(SIZES)}")
    spec = SIZES[size]
    cells = declare(spec, datasets)
    if not run:
        store = CellStore(Path(out), say)
        records = {c.key: r for c in cells if (r := store.load(c)) is not None}
        report = write_report(spec, cells, records, Path(out), {}, command, git_commit())
        return Reproduction(size, [], list(records), records, report)
    if workers < 1:
        raise ReproduceError(f"workers must be at least 1, got {workers}")
    check_data(cells, data_root)
    dev = open_device(device)
    store = CellStore(Path(out), say)
    ctx = Context(store.raw, dev, data_root, tracking_uri, say)
    here = machine(dev)
    records: dict[str, dict[str, Any]] = {}
    ran, skipped = [], []
    bar = tqdm(total=len(cells), desc=f"paper ({size})", disable=not progress, file=sys.stderr)

    def visit(cell: Cell) -> None:  # called holding the cell's lock
        bar.set_postfix_str(cell.name)
        record = store.load(cell)  # also what another run saved while we waited for the lock
        needs = {key: records[key] for key in cell.needs}
        if record is not None and stale(record, needs):
            say(f"{cell.key}: computed again, its input {', '.join(stale(record, needs))} was")
            record = None
        if record is None:
            with measure(dev) as cost:
                result, outputs = RUNNERS[cell.kind](cell, ctx)
            record = store.save(cell, result, cost, here, outputs, {k: r.get("stamp") for k, r in needs.items()})
            ran.append(cell.key)
            say(f"{cell.key}: done in {cost['seconds']:.1f} s, peak {cost['peak_rss_mb']:.0f} MB")
        else:
            skipped.append(cell.key)
        records[cell.key] = record
        bar.update()

    procs, finished = _start_workers(workers, size, Path(out), data_root, device, tracking_uri, datasets,
                                     torch.get_num_threads()) if workers > 1 else ([], None)
    try:
        _visit_all(cells, store, ctx, visit, say)
    except BaseException:
        for proc in procs:  # no orphan keeps computing cells after this run failed or was interrupted
            proc.terminate()
            proc.join()
        raise
    finally:
        bar.close()
    ran_by = {"main": list(ran)}
    for proc in procs:
        proc.join()
    while finished is not None and not finished.empty():
        name, theirs = finished.get()
        ran_by[name] = theirs
    failed = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if failed:  # their cells were computed here (a dead run's locks are free), so the report is whole; say so
        say(f"worker(s) failed: {', '.join(failed)}; this run computed what they left")
    everyone = {key for keys in ran_by.values() for key in keys}
    records = {c.key: records[c.key] for c in cells}  # declared order, whichever run finished a cell first
    report = write_report(spec, cells, records, Path(out), here, command, git_commit()) if write else \
        Path(out) / spec.report_file
    return Reproduction(size, [c.key for c in cells if c.key in everyone],
                        [c.key for c in cells if c.key not in everyone], records, report, ran_by)


def _visit_all(cells: list[Cell], store: CellStore, ctx: Context, visit: Callable[[Cell], None],
               say: Callable[[str], None]) -> None:
    """Visit every cell once, holding its lock.  Runs into the same folder split the cells: a cell another run
    holds (and every cell reading it) is left for later, when its record is loaded, or computed here if that run
    died (the kernel drops its lock).  Later, a left cell whose inputs are done and whose lock is free is taken
    first; this run waits on a held lock only when no other left cell can go (two cells reading one set that
    another run made are then computed side by side, not one after the other)."""
    def try_visit(cell: Cell) -> bool:
        """Visit ``cell`` if no other run holds it; whether it was visited."""
        lock = FileLock(lock_path(store.path(cell)), remove_on_release=True)
        if not lock.acquire(blocking=False):
            return False
        try:
            visit(cell)
        finally:
            lock.release()
        return True

    deferred: list[Cell] = []
    for cell in cells:
        if any(need in {d.key for d in deferred} for need in cell.needs):
            deferred.append(cell)
        elif not try_visit(cell):
            if cell.kind in JOINERS and store.load(cell) is None:  # being computed: share its work
                say(f"{cell.key}: another run is computing it; joining its work")
                JOINERS[cell.kind](cell, ctx)
            deferred.append(cell)
    while deferred:
        waiting = {c.key for c in deferred}  # the first left cell's inputs are never among them: ready is not empty
        ready = [c for c in deferred if not waiting.intersection(c.needs)]
        done = next((c for c in ready if try_visit(c)), None)
        if done is None:  # every ready cell is held by another run: wait for the first
            done = ready[0]
            with locked(store.path(done), on_wait=say, remove_on_release=True):
                visit(done)
        deferred.remove(done)
