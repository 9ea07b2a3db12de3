"""Worker processes: any number, on one machine or many, join one study through its storage.

Grid runs use Optuna's trial queue rather than letting :class:`~optuna.samplers.GridSampler` pick points:
in Optuna 5 GridSampler gives trial number k grid point k, but past the first N trials (e.g. after a retry
took a number) it picks among unvisited points without a lock, and once every point has started it hands
out RUNNING points again, so two workers can train the same architecture.  Popping a queued trial is atomic
in every storage, so each architecture is evaluated by exactly one worker:

* the process that creates the study enqueues every architecture once, then marks the study ``ready``;
* each queued trial carries its architecture (user attr ``arch``) from its creation, so a trial whose worker
  dies at any moment still says what it was evaluating;
* a worker pops queued trials until none is left, then waits while other workers' trials run, because one
  of them may die: RDB storages fail it through Optuna's heartbeat, the journal storage (no heartbeat) fails
  RUNNING trials whose process on this machine is gone; either way :class:`RetryHeartbeatStaleTrialCallback`
  re-queues it and a live worker re-runs it, while no other trial's result is touched.  With the journal a
  worker claims a trial and records itself on it under the sweep's file lock, so the sweep never sees a live
  worker's trial without its owner: a RUNNING trial with no owner is one whose worker died while claiming it.

Only Optuna's public API is used (``enqueue_trial``, ``ask``/``optimize``, ``tell`` by trial number,
``RetryHeartbeatStaleTrialCallback``, ``fail_stale_trials``, ``get_trials``); the test
``test_nas_code_uses_no_optuna_internals`` keeps it so, and ``test_optuna_public_behaviour_the_workers_rely_on``
checks, on the installed Optuna, the behaviour of that API the workers depend on.

``python -m ddfad_apps.nas.workers JOB.json`` runs one worker (what ``ddfad-apps nas --workers N`` starts N of);
the job file's storage URL is redacted, the real one comes from ``$DDFAD_NAS_STORAGE`` (:func:`spawn_workers`).
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
from contextlib import nullcontext
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from ddfad_apps.nas.job import STORAGE_ENV, NASJob
from ddfad_apps.nas.objective import Objective, holds, owner_of, record_owner
from ddfad_apps.nas.space import queue_params
from ddfad_apps.nas.study import journal_path, make_sampler, make_storage

READY_ATTR = "ready"
RETRY_REASON_ATTR = "retry_reason"
POLL_SECONDS = 1.0


def open_study(job: NASJob, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """The job's study with its sampler.  A queued (grid) study's sampler never chooses anything (every queued
    trial's params are fixed), so it gets a RandomSampler: GridSampler's ``after_trial`` (Optuna 5.0) looks up a
    ``grid_id`` that queued trials lack (KeyError once one grid point is left) and calls ``study.stop()``, which
    raises outside ``optimize`` (e.g. in :func:`fail_dead_trials`)."""
    storage = storage or make_storage(job.storage)
    sampler = make_sampler("random" if job.queued else job.sampler, job.seed)
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
        # every queued trial (and every trial that ran) carries its arch as a user attr
        seen = {t.user_attrs["arch"] for t in study.get_trials(deepcopy=False) if "arch" in t.user_attrs}
        for config in configs:
            if space.key(config) not in seen:
                # the architecture is recorded with the trial itself: no moment where a trial lacks it
                study.enqueue_trial(queue_params(space, config, job.archs), user_attrs={"arch": space.key(config)})
                seen.add(space.key(config))
    if created:
        study.set_user_attr(READY_ATTR, True)
    deadline = time.monotonic() + timeout
    while not study.user_attrs.get(READY_ATTR):
        if time.monotonic() > deadline:
            raise TimeoutError(f"study {job.study!r} exists but its creator never queued its architectures")
        time.sleep(POLL_SECONDS)
    return study


def finished(study: optuna.Study) -> int:
    """How many trials hold a final result (completed, or failed with a reason; not lost, not skipped)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)) if holds(t))


class ClaimLock:
    """The journal sweep's file lock, held from before a worker pops a trial until it has recorded itself on it.

    Released early (:meth:`release`) once the owner is recorded, so the trial itself runs unlocked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None

    def __enter__(self) -> "ClaimLock":
        self._handle = open(self.path, "a+")
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        return self

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __exit__(self, *exc: object) -> None:
        self.release()


def fail_dead_trials(study: optuna.Study, lock_path: Path | None = None) -> list[int]:
    """Fail (and re-queue) RUNNING trials whose worker was a process of this machine that no longer exists.

    The journal storage's stand-in for the heartbeat; the sweep holds the file lock under which workers claim
    trials (:class:`ClaimLock`), so two workers never both re-queue one dead trial, and a RUNNING trial without
    an owner is one whose worker died between claiming it and recording itself (the journal is shared by the
    processes of one machine only).  RDB storages use Optuna's heartbeat instead (:func:`fail_stale_trials`).
    """
    if lock_path is None:
        fail_stale_trials(study)
        return []
    host = socket.gethostname()
    failed: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    with ClaimLock(lock_path):
        for t in study.get_trials(deepcopy=True, states=(TrialState.RUNNING,)):
            owner = owner_of(t)
            if owner is None:
                why = "its worker died while claiming it"
            elif owner["host"] != host or _alive(int(owner["pid"])):
                continue
            else:
                why = f"worker pid {owner['pid']} died"
            try:
                study.tell(t.number, state=TrialState.FAIL)
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
                continue  # its worker finished it just before exiting: nothing was lost
            # the retry (a new WAITING trial, public Optuna API: create_trial + add_trial) carries only the
            # architecture and why the trial it re-runs was lost, not the dead attempt's owner or markers
            t.user_attrs = {**{k: v for k, v in t.user_attrs.items() if k == "arch"}, RETRY_REASON_ATTR: why}
            retry(study, t)
            failed.append(t.number)
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

    from ddfad_apps.nas.proxies import proxy_train_set

    torch.set_num_threads(job.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    splits = job.load_splits(progress=progress)
    train, lr, _ = proxy_train_set(job.proxy, splits.train, device=job.device, progress=progress)
    objective = Objective(job, train, splits.test, lr)
    study = open_study(job)
    lock = journal_path(job.storage)
    lock = lock.with_name(lock.name + ".sweep-lock") if lock is not None else None
    ran = 0
    claim = ClaimLock(lock) if lock is not None else None

    def owned(trial: optuna.Trial) -> float:
        record_owner(trial)
        if claim is not None:
            claim.release()  # the trial has its owner: the sweep may look at it now
        return objective(trial)

    def run_one() -> None:
        with claim or nullcontext():
            study.optimize(owned, n_trials=1, callbacks=callbacks)

    callbacks = [] if log is None else [
        lambda _, t: log(f"{time.strftime('%H:%M:%S')} worker {os.getpid()}: trial {t.number} {t.state.name} {t.user_attrs.get('arch')} "
                         f"value {t.value} {t.user_attrs.get('skipped') or t.user_attrs.get('fail_reason') or ''}")]
    if not job.queued:
        budget = job.n_trials or job.search_space().size
        while finished(study) < budget:  # a lost trial does not count: its retry does
            fail_dead_trials(study, lock)
            run_one()
            ran += 1
        return ran
    while True:
        fail_dead_trials(study, lock)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        if TrialState.WAITING in states:
            run_one()
            ran += 1
        elif TrialState.RUNNING in states:
            time.sleep(POLL_SECONDS)  # another worker may still die; its trial would come back to the queue
        else:
            return ran


def spawn_workers(job: NASJob, job_file: Path, n: int, log_dir: Path | None = None) -> list[subprocess.Popen]:
    """Save ``job`` to ``job_file`` and start ``n`` worker processes on it (stdout/stderr to ``log_dir`` if given).

    The file gets the storage URL redacted; the workers get the real one in their environment, never on disk
    and never in their command line (which every user of the machine can read).
    """
    job.save(job_file)
    procs = []
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), STORAGE_ENV: job.storage}
    for i in range(n):
        out = open(log_dir / f"worker-{i}.log", "ab") if log_dir else subprocess.DEVNULL
        procs.append(subprocess.Popen([sys.executable, "-m", "ddfad_apps.nas.workers", str(job_file)],
                                      stdout=out, stderr=subprocess.STDOUT, env=env))
    return procs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Join a NAS study as one worker (see ddfad-apps nas).")
    ap.add_argument("job", type=Path, help=f"job JSON written by ddfad-apps nas (real storage URL in ${STORAGE_ENV})")
    args = ap.parse_args(argv)
    try:
        job = NASJob.load(args.job)
    except (OSError, ValueError) as exc:
        ap.error(str(exc))
    ran = run_worker(job, log=lambda m: print(m, flush=True))
    print(f"worker {os.getpid()}: ran {ran} trials", flush=True)


if __name__ == "__main__":
    main()
