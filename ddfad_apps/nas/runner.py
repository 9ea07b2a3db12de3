"""Run one study to the end from this machine: make the proxy set, queue the architectures, drive workers.

With one worker the trials run in this process; with more, worker processes join the study through its
storage while this process shows their progress.  Returns one result per architecture the study holds.

A worker that dies is not a failed run: the surviving workers re-run its trial, so a dead worker is reported
as a warning and only a study left incomplete (architectures without a result) raises :class:`NASRunError`.
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from ddfad_apps.nas.job import NASJob
from ddfad_apps.nas.report import ArchResult, collect
from ddfad_apps.nas.workers import POLL_SECONDS, finished, prepare_study, run_worker, spawn_workers


class NASRunError(RuntimeError):
    """The study is incomplete: architectures (or budget trials) have no result."""


def _exit_text(proc: subprocess.Popen) -> str:
    """``pid 123 exit code -9 (SIGKILL)``: a negative code is the signal that killed the worker."""
    code = proc.returncode
    text = f"pid {proc.pid} exit code {code}"
    if code < 0:
        try:
            text += f" ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return text


def _job_file_name(study: str) -> str:
    """One file name for a study name, which may hold a data folder's path (``/``) and be long."""
    name = re.sub(r"[^\w.,=+\[\]-]", "_", study)
    if len(name) > 200:
        name = f"{name[:180]}-{hashlib.sha1(study.encode()).hexdigest()[:12]}"
    return name + ".json"


def _missing(results: dict[str, ArchResult], expected: set[str] | None, budget: int, done: int) -> str:
    """What the study lacks, in words ('' when complete): ``expected`` architectures without a result, or
    budget trials (``expected=None``: a tpe/random study of ``budget`` trials, ``done`` of them finished)."""
    if expected is None:
        return f"{budget - done} of {budget} trials of the budget have no result" if done < budget else ""
    missing = sorted(expected - set(results))
    if not missing:
        return ""
    return f"{len(missing)} of {len(expected)} architectures have no result (e.g. {', '.join(missing[:3])})"


def run_study(job: NASJob, workers: int, out_dir: Path, *, progress: bool = True,
              echo: Callable[[str], None] = print, configs: list[dict] | None = None
              ) -> tuple[dict[str, ArchResult], float]:
    """Evaluate ``job``'s study with ``workers`` processes; returns (results by architecture, proxy-set seconds)."""
    import torch

    from ddfad_apps.nas.proxies import proxy_train_set

    torch.set_num_threads(job.threads)
    splits = job.load_splits(progress=progress)
    _, _, info = proxy_train_set(job.proxy, splits.train, device=job.device, progress=progress)
    study = prepare_study(job, configs)
    space = job.search_space()
    wanted = {space.key(c) for c in configs} if configs is not None else None
    expected = None  # the architectures the study must hold in the end (budget mode: just a number of trials)
    if job.queued:
        expected = wanted if wanted is not None else set(
            job.archs if job.archs is not None else (space.key(c) for c in space.configs()))
    total = len(expected) if expected is not None else (job.n_trials or space.size)  # as run_worker's budget
    echo(f"{job.proxy.name}: study {job.study} ({info['clips']} training clips, set made in "
         f"{info['make_seconds']:.0f}s)")
    bar = tqdm(total=total, desc=job.proxy.name, disable=not progress, initial=min(total, finished(study)))
    started = time.perf_counter()
    if workers == 1:
        def log(_: str) -> None:
            bar.update(min(total, finished(study)) - bar.n)

        run_worker(job, log=log)
        dead, where = [], ""
    else:
        log_dir = out_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        procs = spawn_workers(job, out_dir / "jobs" / _job_file_name(job.study), workers, log_dir)
        while any(p.poll() is None for p in procs):
            time.sleep(POLL_SECONDS)
            bar.update(min(total, finished(study)) - bar.n)
        dead = [_exit_text(p) for p in procs if p.returncode != 0]
        where = f"; worker logs in {log_dir}"
    bar.update(min(total, finished(study)) - bar.n)
    bar.close()
    results = collect(study)
    gap = _missing(results, expected, total, finished(study))
    died = f"{len(dead)} of {workers} workers died ({'; '.join(dead)})" if dead else ""
    if gap:
        raise NASRunError(f"study {job.study!r} is incomplete: {gap}" + (f"; {died}" if died else "") + where)
    if dead:
        echo(f"WARNING: study {job.study!r}: {died}; the other workers re-ran their trials and the study is "
             f"complete{where}")
    if wanted is not None:
        results = {a: r for a, r in results.items() if a in wanted}
    echo(f"{job.proxy.name}: {len(results)} architectures in {time.perf_counter() - started:.0f}s")
    return results, float(info["make_seconds"])
