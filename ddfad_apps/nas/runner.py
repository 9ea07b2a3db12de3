"""Run one study to the end from this machine: make the proxy set, queue the architectures, drive workers.

With one worker the trials run in this process; with more, worker processes join the study through its
storage while this process shows their progress.  Returns one result per architecture the study holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from optuna.trial import TrialState
from tqdm.auto import tqdm

from ddfad_apps.nas.job import NASJob
from ddfad_apps.nas.objective import holds
from ddfad_apps.nas.report import ArchResult, collect
from ddfad_apps.nas.workers import POLL_SECONDS, prepare_study, run_worker, spawn_workers


class NASRunError(RuntimeError):
    """Worker processes failed and left architectures unevaluated."""


def _done(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)) if holds(t))


def run_study(job: NASJob, workers: int, out_dir: Path, *, progress: bool = True,
              echo: Callable[[str], None] = print, configs: list[dict] | None = None
              ) -> tuple[dict[str, ArchResult], float]:
    """Evaluate ``job``'s study with ``workers`` processes; returns (results by architecture, proxy-set seconds)."""
    import torch

    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.nas.proxies import proxy_train_set

    torch.set_num_threads(job.threads)
    splits = load_features(job.dataset, job.data_root, progress=progress)
    _, _, info = proxy_train_set(job.proxy, splits.train, device=job.device, progress=progress)
    study = prepare_study(job, configs)
    wanted = None
    if configs is not None:
        wanted = {job.search_space().key(c) for c in configs}
    total = len(wanted) if wanted is not None else (job.n_trials if not job.queued else
                                                    len(job.archs or []) or job.search_space().size)
    echo(f"{job.proxy.name}: study {job.study} ({info['clips']} training clips, set made in "
         f"{info['make_seconds']:.0f}s)")
    bar = tqdm(total=total, desc=job.proxy.name, disable=not progress, initial=min(total, _done(study)))
    started = time.perf_counter()
    if workers == 1:
        def log(_: str) -> None:
            bar.update(min(total, _done(study)) - bar.n)

        run_worker(job, log=log)
    else:
        job_file = job.save(out_dir / "jobs" / f"{job.study}.json")
        log_dir = out_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        procs = spawn_workers(job_file, workers, log_dir)
        while any(p.poll() is None for p in procs):
            time.sleep(POLL_SECONDS)
            bar.update(min(total, _done(study)) - bar.n)
        bad = [p.returncode for p in procs if p.returncode != 0]
        if bad:
            raise NASRunError(f"{len(bad)} of {workers} workers of study {job.study!r} exited with codes {bad}; "
                              f"see {log_dir}")
    bar.update(min(total, _done(study)) - bar.n)
    bar.close()
    results = collect(study)
    if wanted is not None:
        results = {a: r for a, r in results.items() if a in wanted}
    echo(f"{job.proxy.name}: {len(results)} architectures in {time.perf_counter() - started:.0f}s")
    return results, float(info["make_seconds"])
