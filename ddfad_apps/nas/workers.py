"""Worker processes: any number, on one machine or many, join one study through its storage.

Grid runs use Optuna's trial queue rather than letting :class:`~optuna.samplers.GridSampler` pick points:
in Optuna 5 GridSampler gives trial number k grid point k, but past the first N trials (e.g. after a retry
took a number) it picks among unvisited points without a lock, and once every point has started it hands
out RUNNING points again, so two workers can train the same architecture.  Popping a queued trial is atomic
in every storage, so each architecture is evaluated by exactly one worker:

* the process that creates the study enqueues every architecture once, then marks the study ``ready``;
* a worker pops queued trials until none is left, then waits while other workers' trials run, because one
  of them may die: RDB storages fail it through Optuna's heartbeat, the journal storage (no heartbeat) fails
  RUNNING trials whose process on this machine is gone; either way :class:`RetryHeartbeatStaleTrialCallback`
  re-queues it and a live worker re-runs it, while no other trial's result is touched.

``python -m ddfad_apps.nas.workers JOB.json`` runs one worker (what ``ddfad-apps nas --workers N`` starts N of).
"""

from __future__ import annotations

import argparse
import fcntl
import warnings
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from ddfad_apps.nas.job import NASJob
from ddfad_apps.nas.objective import Objective, owner_of
from ddfad_apps.nas.space import grid, key_of_params, queue_params
from ddfad_apps.nas.study import journal_path, make_sampler, make_storage

READY_ATTR = "ready"
POLL_SECONDS = 1.0


def open_study(job: NASJob, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    storage = storage or make_storage(job.storage)
    sampler = make_sampler(job.sampler, job.seed, grid(job.search_space(), job.archs) if job.queued else None)
    return optuna.load_study(study_name=job.study, storage=storage, sampler=sampler)


def prepare_study(job: NASJob, configs: list[dict] | None = None, timeout: float = 120.0) -> optuna.Study:
    """Create the study (and queue its architectures) if it does not exist yet; else wait until it is ready.

    ``configs`` are the architectures to queue (default: ``job.archs`` or the whole space).  Queueing into an
    existing study adds only architectures it has never seen, so the ground-truth study grows on demand.
    """
    storage = make_storage(job.storage)
    space = job.search_space()
    try:
        study = optuna.create_study(study_name=job.study, storage=storage, direction="maximize",
                                    sampler=make_sampler("random", job.seed))
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=job.study, storage=storage)
        created = False
    if created:
        study.set_user_attr("job", {k: v for k, v in vars(job).items() if k not in ("storage", "proxy")})
        study.set_user_attr("proxy", job.proxy.as_dict())
    if job.queued and (created or configs is not None):
        if configs is None:
            configs = [space.parse(a) for a in job.archs] if job.archs is not None else list(space.configs())
        seen = {key_of_params(space, t.system_attrs.get("fixed_params", t.params))
                for t in study.get_trials(deepcopy=False) if t.system_attrs.get("fixed_params") or t.params}
        for config in configs:
            if space.key(config) not in seen:
                study.enqueue_trial(queue_params(space, config, job.archs))
                seen.add(space.key(config))
    if created:
        study.set_user_attr(READY_ATTR, True)
    deadline = time.monotonic() + timeout
    while not study.user_attrs.get(READY_ATTR):
        if time.monotonic() > deadline:
            raise TimeoutError(f"study {job.study!r} exists but its creator never queued its architectures")
        time.sleep(POLL_SECONDS)
    return study


def fail_dead_trials(study: optuna.Study, lock_path: Path | None = None) -> list[int]:
    """Fail (and re-queue) RUNNING trials whose worker was a process of this machine that no longer exists.

    The journal storage's stand-in for the heartbeat; the sweep holds a file lock so that two workers never
    both re-queue one dead trial.  RDB storages use Optuna's heartbeat instead (:func:`fail_stale_trials`).
    """
    if lock_path is None:
        fail_stale_trials(study)
        return []
    host = socket.gethostname()
    failed: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for t in study.get_trials(deepcopy=True, states=(TrialState.RUNNING,)):
                owner = owner_of(t)
                if owner is None or owner["host"] != host or _alive(int(owner["pid"])):
                    continue
                study._storage.set_trial_user_attr(t._trial_id, "lost", f"worker pid {owner['pid']} died")
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                retry(study, study._storage.get_trial(t._trial_id))
                failed.append(t.number)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still answers kill(0) but will never finish its trial
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def run_worker(job: NASJob, progress: bool = False, log: Callable[[str], None] | None = None) -> int:
    """Evaluate trials of ``job``'s study until none is left; returns how many trials this worker ran."""
    import torch

    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.nas.proxies import proxy_train_set

    torch.set_num_threads(job.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    splits = load_features(job.dataset, job.data_root, progress=progress)
    train, lr, _ = proxy_train_set(job.proxy, splits.train, device=job.device, progress=progress)
    objective = Objective(job, train, splits.test, lr)
    study = open_study(job)
    lock = journal_path(job.storage)
    lock = lock.with_name(lock.name + ".sweep-lock") if lock is not None else None
    ran = 0
    callbacks = [] if log is None else [
        lambda _, t: log(f"{time.strftime('%H:%M:%S')} worker {os.getpid()}: trial {t.number} {t.state.name} {t.user_attrs.get('arch')} "
                         f"value {t.value} {t.user_attrs.get('fail_reason') or t.user_attrs.get('skipped') or ''}")]
    if not job.queued:
        done = (TrialState.COMPLETE, TrialState.FAIL)
        budget = job.n_trials or job.search_space().size
        callbacks.append(optuna.study.MaxTrialsCallback(budget, states=done))
        while len(study.get_trials(deepcopy=False, states=done)) < budget:
            fail_dead_trials(study, lock)
            study.optimize(objective, n_trials=1, callbacks=callbacks)
            ran += 1
        return ran
    while True:
        fail_dead_trials(study, lock)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        if TrialState.WAITING in states:
            study.optimize(objective, n_trials=1, callbacks=callbacks)
            ran += 1
        elif TrialState.RUNNING in states:
            time.sleep(POLL_SECONDS)  # another worker may still die; its trial would come back to the queue
        else:
            return ran


def spawn_workers(job_file: Path, n: int, log_dir: Path | None = None) -> list[subprocess.Popen]:
    """Start ``n`` worker processes for the job in ``job_file`` (stdout/stderr to ``log_dir`` if given)."""
    procs = []
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    for i in range(n):
        out = open(log_dir / f"worker-{i}.log", "ab") if log_dir else subprocess.DEVNULL
        procs.append(subprocess.Popen([sys.executable, "-m", "ddfad_apps.nas.workers", str(job_file)],
                                      stdout=out, stderr=subprocess.STDOUT, env=env))
    return procs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Join a NAS study as one worker (see ddfad-apps nas).")
    ap.add_argument("job", type=Path, help="job JSON written by ddfad-apps nas")
    args = ap.parse_args(argv)
    ran = run_worker(NASJob.load(args.job), log=lambda m: print(m, flush=True))
    print(f"worker {os.getpid()}: ran {ran} trials", flush=True)


if __name__ == "__main__":
    main()
