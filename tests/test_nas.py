"""NAS on proxies: the search space, the Optuna bridge, failures as failed trials, workers sharing one study
(embedded journal storage and a real PostgreSQL server), a killed worker's trial re-run, the report math and
the CLI end to end.

Worker tests use a tiny folder data set of real FSDD clips (3 digits x 6 clips) and tiny proxies (2 clips per
class, 1-2 epochs, width-32 ConvNet-1/2), so every architecture trains in well under a second.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import numpy as np
import optuna
import pytest
import torch
from scipy import stats
from optuna.trial import TrialState

from ddfad_apps.features.dataset import FeatureSet, load_features
from ddfad_apps.nas.job import STORAGE_ENV, NASJob
from ddfad_apps.nas.objective import Objective, holds, owner_of
from ddfad_apps.nas.proxies import proxy_spec
from ddfad_apps.nas.report import (ArchResult, collect, compare, correlate, differences, format_reports,
                                   scatter_figure, top_count, top_distribution_figure)
from ddfad_apps.nas.space import build, distributions, grid, resolve_space, stratified_sample, suggest
from ddfad_apps.nas.study import make_storage
from ddfad_apps.nas.workers import RETRY_REASON_ATTR, open_study, prepare_study, run_worker, spawn_workers
from ddfad_apps.tracking.redact import redact_text, redact_url
from search_spaces import SearchSpace, get_space

# 2 x 1 x 1 x 2 x 2 = 8 cheap architectures of the real space
TINY = {"depth": ["1", "2"], "width": ["32"], "activation": ["relu"], "norm": ["none", "batchnorm"],
        "pooling": ["none", "max"]}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tiny_folder(fsdd_folder) -> Path:
    return fsdd_folder(("0", "1", "2"), 6)


def tiny_job(storage: str, data: Path, study: str = "tiny", proxy: str = "random", **kw) -> NASJob:
    spec = proxy_spec(proxy, **({"cpc": 2, "epochs": 2} if proxy != "early-stopping" else {"epochs": 1}))
    return NASJob(storage=storage, study=study, dataset=str(data), proxy=spec, restriction=TINY, **kw)


def _retried_number(trial: optuna.trial.FrozenTrial) -> int | None:
    """The trial ``trial`` re-runs (Optuna's public helper; experimental, hence the warning filter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def _evaluated(study: optuna.Study) -> Counter:
    """How often each architecture was actually trained (trials that hold a result)."""
    return Counter(t.user_attrs["arch"] for t in study.get_trials(deepcopy=False)
                   if t.state in (TrialState.COMPLETE, TrialState.FAIL) and holds(t))


# ---------------------------------------------------------------- space


def test_space_has_720_unique_configs_that_build_or_fail_cleanly() -> None:
    space = get_space("convnet720")
    configs = list(space.configs())
    assert space.size == len(configs) == 720
    assert len({space.key(c) for c in configs}) == 720
    assert all(space.parse(space.key(c)) == c for c in configs)
    failed = 0
    for c in configs:
        try:
            build(space, c, 10, (3, 20, 51))  # builds run the network once on a (3, 20, 51) input
        except ValueError as exc:
            failed += 1
            assert "cannot process" in str(exc)
    assert failed == 0  # every ConvNet of the paper's space handles FD-MFCC 20x51
    x = torch.randn(2, 3, 20, 51)
    for c in stratified_sample(space, 12, seed=3):
        assert build(space, c, 10, (3, 20, 51))(x).shape == (2, 10)


def test_stratified_sample_is_balanced_distinct_and_seeded() -> None:
    space = get_space("convnet720")
    for n in (24, 36, 500):
        sample = stratified_sample(space, n, seed=1)
        assert len({space.key(c) for c in sample}) == n
        for dim, values in space.dimensions.items():
            counts = Counter(c[dim] for c in sample)
            assert set(counts) == set(values) and max(counts.values()) - min(counts.values()) <= 1, dim
    assert stratified_sample(space, 24, 1) == stratified_sample(space, 24, 1) != stratified_sample(space, 24, 2)
    assert len(stratified_sample(space, 10_000)) == 720


def test_restrict_accepts_aliases_and_rejects_unknown_values() -> None:
    sub = resolve_space("convnet720", {"pooling": ["max", "avgpooling"], "width": ["32"]})
    assert sub.size == 4 * 1 * 3 * 5 * 2 and sub.dimensions["pooling"] == ("maxpooling", "avgpooling")
    assert sub.name != "convnet720"
    with pytest.raises(ValueError, match="not in space"):
        resolve_space("convnet720", {"width": ["48"]})
    with pytest.raises(ValueError, match="no dimension"):
        resolve_space("convnet720", {"kernel": ["3"]})
    with pytest.raises(ValueError, match="unknown search space"):
        get_space("nope")
    with pytest.raises(ValueError, match="repeats"):
        SearchSpace("bad", "convnet", {"depth": (1, 1)})


@pytest.mark.parametrize("use_list", [False, True])
def test_grid_sampler_walks_the_declared_space(use_list: bool) -> None:
    space = resolve_space("convnet720", {"depth": ["1", "2"], "width": ["32"], "activation": ["relu"],
                                         "norm": ["none", "batchnorm"]})
    archs = [space.key(c) for c in stratified_sample(space, 5, 0)] if use_list else None
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid(space, archs), seed=0))
    seen = []
    study.optimize(lambda t: seen.append(space.key(suggest(t, space, archs))) or 0.0)
    expected = archs if use_list else [space.key(c) for c in space.configs()]
    assert sorted(seen) == sorted(expected)
    assert set(distributions(space, archs)) == set(grid(space, archs))


def test_optuna_grid_sampler_never_reruns_a_failed_point() -> None:
    """Why the grid is queued: GridSampler counts a FAIL trial as visited (verified on the installed Optuna)."""
    study = optuna.create_study(sampler=optuna.samplers.GridSampler({"x": [0, 1]}, seed=0))
    study.optimize(lambda t: math.nan if t.suggest_categorical("x", [0, 1]) == 0 else 1.0, n_trials=2)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "FAIL"]
    study.optimize(lambda t: float(t.suggest_categorical("x", [0, 1])), n_trials=1)  # re-runs a random point
    assert len(study.trials) == 3  # nothing in GridSampler ties the extra trial to the failed point


# ---------------------------------------------------------------- objective failures


def _tiny_set(n: int, shape: tuple[int, int, int], scale: float = 1.0) -> FeatureSet:
    g = torch.Generator().manual_seed(0)
    return FeatureSet(torch.randn(n, *shape, generator=g) * scale, torch.arange(n) % 2, ["a", "b"], {})


def _enqueue_first(study: optuna.Study, job: NASJob) -> None:
    """Queue the space's first architecture as the workers do: its params, and its arch as a user attr."""
    space = job.search_space()
    config = next(iter(space.configs()))
    study.enqueue_trial(config, user_attrs={"arch": space.key(config)})


def test_failing_architectures_become_failed_trials_with_a_reason() -> None:
    space_r = {"depth": ["1"], "width": ["32"], "activation": ["relu"], "norm": ["instancenorm"], "pooling": ["none"]}
    job = NASJob(storage="journal:unused", study="s", dataset="x", proxy=proxy_spec("early-stopping", epochs=1),
                 restriction=space_r)
    study = optuna.create_study(direction="maximize")
    # instance norm over a 1x1 input outputs a constant: the model refuses to build
    small = _tiny_set(4, (3, 1, 1))
    _enqueue_first(study, job)
    study.optimize(Objective(job, small, small), n_trials=1)
    # a huge learning rate on huge inputs drives the loss to inf/NaN
    job_nan = NASJob(storage="journal:unused", study="s", dataset="x", restriction=space_r | {"norm": ["none"]},
                     proxy=proxy_spec("early-stopping", epochs=3, lr=1e12))
    big = _tiny_set(8, (3, 4, 4), scale=1e6)
    other = optuna.create_study(direction="maximize")  # its norm choices differ: a study of its own
    _enqueue_first(other, job_nan)
    other.optimize(Objective(job_nan, big, big), n_trials=1)
    (too_small,), (nan,) = study.trials, other.trials
    assert too_small.state == nan.state == TrialState.FAIL
    assert too_small.user_attrs["fail_reason"] == "input_too_small" and "1x1" in too_small.user_attrs["error"]
    assert nan.user_attrs["fail_reason"] == "nan_loss" and "loss became" in nan.user_attrs["error"]
    assert nan.user_attrs["arch"].startswith("depth=1")


def _tiny_objective(queued: bool) -> tuple[NASJob, Objective]:
    """A one-architecture ConvNet-1 on 8 random 3x4x4 clips: a trial trains in milliseconds."""
    restriction = {"depth": ["1"], "width": ["32"], "activation": ["relu"], "norm": ["none"], "pooling": ["none"]}
    job = NASJob(storage="journal:unused", study="s", dataset="x", proxy=proxy_spec("early-stopping", epochs=1),
                 restriction=restriction, sampler="grid" if queued else "random", n_trials=None if queued else 2)
    data = _tiny_set(8, (3, 4, 4))
    return job, Objective(job, data, data)


def test_duplicate_architecture_is_a_failed_trial_marked_duplicate_of() -> None:
    """A sampler that proposes an architecture again gets a FAIL trial naming the trial it repeats (not PRUNED,
    which in Optuna means stopped early by a pruner), and only the first counts as the architecture's result."""
    job, objective = _tiny_objective(queued=False)
    params = {d: v[0] for d, v in job.search_space().dimensions.items()}
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    study.optimize(objective, n_trials=2)
    first, dup = study.trials
    assert first.state == TrialState.COMPLETE and holds(first)
    assert dup.state == TrialState.FAIL and not holds(dup)
    assert dup.user_attrs["duplicate_of"] == 0 and dup.user_attrs["fail_reason"] == "duplicate"
    assert dup.user_attrs["arch"] == first.user_attrs["arch"] and "seconds" not in dup.user_attrs  # not trained
    assert set(collect(study)) == {first.user_attrs["arch"]} and collect(study)[first.user_attrs["arch"]].trial == 0


def test_trial_finding_the_queue_empty_fails_as_queue_empty() -> None:
    job, objective = _tiny_objective(queued=True)
    study = optuna.create_study(direction="maximize")  # nothing queued: the ask creates a trial without arch
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    assert t.state == TrialState.FAIL and t.user_attrs["fail_reason"] == "queue_empty" and not holds(t)
    assert not t.params  # nothing was suggested, nothing trained


NAS_SOURCES = sorted((Path(__file__).parents[1] / "ddfad_apps" / "nas").glob("*.py"))


@pytest.mark.parametrize("path", NAS_SOURCES, ids=lambda p: p.name)
def test_nas_code_uses_no_optuna_internals(path: Path) -> None:
    """Private Optuna attributes and conventions (trial ids, a study's storage object, the queue's
    ``fixed_params`` system attr) can change in any Optuna release; the NAS code uses the public API only."""
    import re

    internals = re.compile(r"\._trial_id|\._study_id|\._storage\b|\bfixed_params\b|trial\.storage\b|"
                           r"\.storage\.(set|get)_trial|_cached_frozen_trial|\._thread_local")
    hits = [f"{path.name}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
            if internals.search(line)]
    assert not hits, "Optuna internals used:\n" + "\n".join(hits)


def test_optuna_public_behaviour_the_workers_rely_on(tmp_path: Path) -> None:
    """What the workers need from Optuna's public API, checked on the installed version, through two study handles
    on one journal file as two worker processes have them."""
    url = f"journal:{tmp_path / 'nas.journal'}"
    creator = optuna.create_study(study_name="q", storage=make_storage(url), direction="maximize")
    creator.enqueue_trial({"arch": "b"}, user_attrs={"arch": "b"})

    def handle() -> optuna.Study:
        return optuna.load_study(study_name="q", storage=make_storage(url), sampler=optuna.samplers.RandomSampler(0))

    # 1. popping a queued trial hands over its user attrs and fixes its params (queued arch, queue-empty check)
    worker = handle()
    popped = worker.ask()
    assert popped.user_attrs == {"arch": "b"} and popped.suggest_categorical("arch", ["a", "b"]) == "b"
    # 2. an attr a worker sets on its RUNNING trial is seen by another process (the owner record)
    popped.set_user_attr("nas:owner", {"pid": 1, "number": popped.number})
    sweeper = handle()
    (running,) = sweeper.get_trials(deepcopy=True, states=(TrialState.RUNNING,))
    assert running.user_attrs["nas:owner"]["number"] == running.number == popped.number
    # 3. another process can fail a RUNNING trial by its number; telling a finished trial raises ValueError
    sweeper.tell(running.number, state=TrialState.FAIL)
    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):
        sweeper.tell(running.number, state=TrialState.FAIL)
    # 4. the retry callback, called with an edited frozen copy, queues a WAITING trial with exactly those user
    #    attrs and the same params, linked to the original by the public retried_trial_number
    running.user_attrs = {"arch": "b", "retry_reason": "worker pid 1 died"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)(sweeper, running)
    (waiting,) = handle().get_trials(states=(TrialState.WAITING,))
    assert waiting.user_attrs == {"arch": "b", "retry_reason": "worker pid 1 died"}
    assert _retried_number(waiting) == popped.number
    again = handle().ask()
    assert again.number == waiting.number and again.suggest_categorical("arch", ["a", "b"]) == "b"
    with pytest.warns(UserWarning, match="nan is not acceptable"):
        again.study.tell(again, math.nan)  # 5. a NaN objective value is recorded as FAIL, not raised
    assert handle().trials[again.number].state == TrialState.FAIL
    # 6. with the queue empty, ask creates a fresh trial that carries no arch (Objective's queue-empty test)
    assert "arch" not in handle().ask().user_attrs


# ---------------------------------------------------------------- workers sharing one study


def _run_two_workers(job: NASJob, tmp_path: Path) -> optuna.Study:
    load_features(job.dataset, progress=False)  # as the CLI does: workers then read the feature cache
    study = prepare_study(job)
    procs = spawn_workers(job, tmp_path / "job.json", 2, tmp_path)
    for p in procs:
        assert p.wait(timeout=240) == 0, (tmp_path / "worker-0.log").read_text()[-2000:]
    logs = [(tmp_path / f"worker-{i}.log").read_text() for i in range(2)]
    assert all("ran" in log for log in logs)
    return study


def _assert_each_once(study: optuna.Study, job: NASJob) -> None:
    space = job.search_space()
    counts = _evaluated(study)
    assert sorted(counts) == sorted(space.key(c) for c in space.configs())
    assert set(counts.values()) == {1}, counts
    assert all(t.user_attrs["seconds"] > 0 and 0.0 <= t.value <= 1.0
               for t in study.get_trials(states=(TrialState.COMPLETE,)))


def test_two_workers_share_a_journal_study(tiny_folder: Path, tmp_path: Path) -> None:
    job = tiny_job(f"journal:{tmp_path / 'nas.journal'}", tiny_folder)
    study = _run_two_workers(job, tmp_path)
    _assert_each_once(study, job)
    owners = {owner_of(t)["pid"] for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(owners) == 2  # both workers did some of the work


def _pg_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


# a password that needs %-encoding in a URL: neither form may reach any file, log or MLflow param
PG_PASSWORD = "s3cret@Pg"


@pytest.fixture
def postgres_url() -> str:
    """A fresh PostgreSQL server on a loopback port; TCP logins need the password (scram-sha-256), so a worker
    that got a redacted URL could not connect."""
    pytest.importorskip("psycopg2", reason="psycopg2 is needed for PostgreSQL storage (pip install .[postgres])")
    bindir = _pg_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, pwfile = root / "data", root / "pwfile"
    pwfile.write_text(PG_PASSWORD)
    if as_user:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "nas", "--auth-local=trust",
                    "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
    try:
        subprocess.run([*as_user, str(bindir / "createdb"), "-h", str(root), "-p", str(port), "-U", "nas", "nas"],
                       check=True, capture_output=True)  # over the socket: local logins are trusted
        yield f"postgresql://nas:{quote(PG_PASSWORD, safe='')}@127.0.0.1:{port}/nas"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow  # worker processes / MLflow: ~30-60 s each on 2 idle cores
def test_two_workers_share_a_postgres_study(tiny_folder: Path, tmp_path: Path, postgres_url: str) -> None:
    job = tiny_job(postgres_url, tiny_folder, proxy="early-stopping")
    study = _run_two_workers(job, tmp_path)
    _assert_each_once(study, job)
    assert isinstance(make_storage(postgres_url), optuna.storages.RDBStorage)
    assert "s3cret" not in (tmp_path / "job.json").read_text()  # the workers got the password from spawn_workers
    with pytest.raises(Exception, match="password authentication failed"):
        make_storage(redact_url(postgres_url))  # ... and needed it


def _owned_running_trial(study: optuna.Study, proc: subprocess.Popen, log: Path) -> optuna.trial.FrozenTrial:
    """Wait until ``proc`` runs a trial and has recorded itself on it (a fresh read, not an early snapshot)."""
    deadline = time.monotonic() + 120
    while True:
        running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if owner_of(t)]
        if running:
            assert owner_of(running[0])["pid"] == proc.pid
            return running[0]
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


@pytest.mark.slow  # worker processes / MLflow: ~30-60 s each on 2 idle cores
def test_killed_worker_trial_is_rerun_and_nothing_else_is(tiny_folder: Path, tmp_path: Path) -> None:
    # a slow proxy (many epochs) so the worker is surely mid-trial when it is killed
    job = tiny_job(f"journal:{tmp_path / 'nas.journal'}", tiny_folder)
    job.proxy = proxy_spec("random", cpc=2, epochs=3000)
    load_features(job.dataset, progress=False)
    study = prepare_study(job)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 8 and all("arch" in t.user_attrs for t in waiting)  # each knows its arch from the start
    victim = spawn_workers(job, tmp_path / "job.json", 1, tmp_path)[0]
    lost = _owned_running_trial(study, victim, tmp_path / "worker-0.log")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))  # killed in its first trial
    job.proxy = proxy_spec("random", cpc=2, epochs=2)  # the survivor trains fast
    ran = run_worker(job)
    assert ran == 8  # 7 never-started architectures + the re-queued one
    lost_now = study.trials[lost.number]
    assert lost_now.state == TrialState.FAIL and not holds(lost_now)
    retries = [t for t in study.trials if _retried_number(t) == lost.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert f"worker pid {victim.pid} died" in retries[0].user_attrs[RETRY_REASON_ATTR]
    assert retries[0].user_attrs["arch"] == lost.user_attrs["arch"]
    _assert_each_once(study, job)


def test_trial_of_a_worker_that_died_while_claiming_it_is_rerun(tiny_folder: Path, tmp_path: Path) -> None:
    """A worker killed between popping a trial and recording itself on it left a RUNNING trial with no owner
    (and, before arch was queued with the trial, no arch): the sweep must re-queue it, not wait for it forever."""
    job = tiny_job(f"journal:{tmp_path / 'nas.journal'}", tiny_folder)
    load_features(job.dataset, progress=False)
    prepare_study(job)
    # pop a queued trial exactly as a worker does, and never record an owner (the claimer "died" right after)
    orphan = open_study(job).ask()
    frozen = open_study(job).trials[orphan.number]
    assert frozen.state == TrialState.RUNNING and owner_of(frozen) is None and "arch" in frozen.user_attrs
    survivor: dict[str, int] = {}
    thread = threading.Thread(target=lambda: survivor.update(ran=run_worker(job)), daemon=True)
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "the worker waited forever for a trial nobody runs"
    assert survivor["ran"] == 8  # 7 never-started architectures + the orphan's retry
    study = open_study(job)
    assert study.trials[orphan.number].state == TrialState.FAIL
    (retry,) = [t for t in study.trials if _retried_number(t) == orphan.number]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["arch"] == frozen.user_attrs["arch"]
    assert "while claiming" in retry.user_attrs[RETRY_REASON_ATTR]
    _assert_each_once(study, job)


def test_budget_mode_runs_n_trials_with_the_chosen_sampler(tiny_folder: Path, tmp_path: Path) -> None:
    job = tiny_job(f"journal:{tmp_path / 'nas.journal'}", tiny_folder, sampler="tpe", n_trials=5)
    study = prepare_study(job)
    assert not study.get_trials(states=(TrialState.WAITING,))  # nothing queued: the sampler chooses
    run_worker(job)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))
    finished = [t for t in trials if holds(t)]
    assert len(finished) == 5
    assert isinstance(open_study(job).sampler, optuna.samplers.TPESampler)
    assert len({t.user_attrs["arch"] for t in finished}) == 5  # a repeat is never trained twice
    for dup in (t for t in trials if not holds(t)):  # a repeat is a FAIL trial naming the one it repeats
        assert dup.user_attrs["fail_reason"] == "duplicate"
        assert study.trials[dup.user_attrs["duplicate_of"]].user_attrs["arch"] == dup.user_attrs["arch"]
    assert not study.get_trials(states=(TrialState.PRUNED,))
    assert all(set(t.params) == set(TINY) for t in finished)  # one categorical per dimension


# ---------------------------------------------------------------- secrets


def test_redact_url_hides_passwords_only() -> None:
    cases = {
        "postgresql://user:secret@host/db": "postgresql://user:***@host/db",
        "postgresql+psycopg2://u:p%40ss@h:5432/db?sslmode=require&password=zz":
            "postgresql+psycopg2://u:***@h:5432/db?sslmode=require&password=***",
        "postgresql://u:p@ss/w?rd@host/db": "postgresql://u:***@host/db",  # un-escaped specials: hidden too
        "mysql://u:pw@h/db?PASSWORD=x&user=u": "mysql://u:***@h/db?PASSWORD=***&user=u",
    }
    for url, safe in cases.items():
        assert redact_url(url) == safe
    for plain in ("postgresql://user@host/db", "sqlite:///a/b@c.db", "journal:/tmp/x@y/nas.journal", "nas.journal",
                  "postgresql://host/db?application_name=a@b", ""):
        assert redact_url(plain) == plain
    url = "postgresql://u:p%40ss@h/db"
    assert redact_text(f"cannot reach {url}: bad password p@ss", url) == "cannot reach postgresql://u:***@h/db: bad password ***"


def test_job_file_holds_the_redacted_url_and_workers_take_the_real_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = "postgresql://nas:top%2Fsecret@db.example:5432/nas"
    job = tiny_job(real, tmp_path)
    path = job.save(tmp_path / "jobs" / "job.json")
    assert "top" not in path.read_text() and json.loads(path.read_text())["storage"] == redact_url(real)
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    with pytest.raises(ValueError, match=f"{path}.*redacted.*{STORAGE_ENV}"):
        NASJob.load(path)
    monkeypatch.setenv(STORAGE_ENV, real)
    assert NASJob.load(path) == job
    monkeypatch.setenv(STORAGE_ENV, "postgresql://nas:x@elsewhere/nas")
    with pytest.raises(ValueError, match="is not the job's") as err:
        NASJob.load(path)
    assert "top" not in str(err.value)
    # a URL without a password needs nothing from the environment
    monkeypatch.delenv(STORAGE_ENV)
    plain = tiny_job(f"journal:{tmp_path / 'nas.journal'}", tmp_path)
    assert NASJob.load(plain.save(tmp_path / "plain.json")) == plain


# ---------------------------------------------------------------- report


def _results(values: list[float], seconds: float = 1.0) -> dict[str, ArchResult]:
    return {f"a{i}": ArchResult(v, seconds, "COMPLETE") for i, v in enumerate(values)}


def test_report_correlations_pick_and_speedup() -> None:
    truth = _results([0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.8, 0.4], seconds=10.0)
    same = compare("p", _results([1, 5, 3, 9, 7, 2, 8, 4]), truth, make_seconds=2.0)
    assert same.spearman == pytest.approx(1.0) and same.kendall == pytest.approx(1.0)
    assert same.picked_arch == "a3" and same.picked_truth == pytest.approx(0.9) == same.best_truth
    assert same.truth_seconds == 80.0 and same.proxy_seconds == 8.0 and same.speedup == pytest.approx(8.0)
    assert same.top_n == 3  # 5% of 8 rounds up to 1, raised to the minimum of 3
    reverse = compare("p", _results([-v for v in [0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.8, 0.4]]), truth)
    assert reverse.spearman == pytest.approx(-1.0) and reverse.kendall == pytest.approx(-1.0)
    assert reverse.picked_arch == "a0" and reverse.picked_truth == pytest.approx(0.1)
    # a0 and a5 (neighbours in rank) swapped: rho = 1 - 6*(1+1)/(8*(64-1)), tau = 1 - 2*1/28
    proxy = _results([0.2, 0.6, 0.3, 0.9, 0.7, 0.1, 0.8, 0.4])
    r = compare("p", proxy, truth)
    assert r.spearman == pytest.approx(1 - 6 * 2 / (8 * 63)) and r.kendall == pytest.approx(1 - 2 / 28)
    assert r.correlations["top_proxy"].spearman == pytest.approx(1.0)  # the swap is outside the top 3
    assert r.correlations["all"].spearman_low < r.spearman <= r.correlations["all"].spearman_high


def test_top_count_is_5_percent_rounded_up_and_at_least_3() -> None:
    assert [top_count(n) for n in (2, 8, 24, 60, 61, 100, 720)] == [2, 3, 3, 3, 4, 5, 36]  # 0.05*60 is 3.0000001
    text = format_reports([compare("p", _results(list(range(24))), _results(list(range(24))))])
    assert "top 5% = 3 of 24 architectures (5% of 24 is 1.2, rounded up to 2, raised to the minimum of 3)" in text
    with pytest.raises(ValueError, match="top fraction"):
        top_count(10, 0.0)


def test_top_5_percent_by_truth_and_by_proxy_on_a_hand_made_example() -> None:
    """60 architectures, so the top 5% is 3.  The proxy agrees with the truth except: it rates a10 (truth 10) the
    best, and swaps a58 and a59.  Top 3 by truth {a57, a58, a59}: proxy 57, 59.5, 58 -> rho 1/2, tau 1/3.
    Top 3 by proxy {a10, a58, a59}: truth 10, 58, 59 against proxy 100, 59.5, 58 -> exactly reversed, -1."""
    truth = {f"a{i:02d}": ArchResult(float(i), 1.0, "COMPLETE") for i in range(60)}
    proxy = {a: ArchResult(r.accuracy, 1.0, "COMPLETE") for a, r in truth.items()}
    proxy["a10"], proxy["a58"], proxy["a59"] = (ArchResult(v, 1.0, "COMPLETE") for v in (100.0, 59.5, 58.0))
    rep = compare("p", proxy, truth, n_boot=200)
    by_truth, by_proxy = rep.correlations["top_truth"], rep.correlations["top_proxy"]
    assert rep.n == 60 and rep.top_n == by_truth.n == by_proxy.n == 3
    assert by_truth.spearman == pytest.approx(0.5) and by_truth.kendall == pytest.approx(1 / 3)
    assert by_proxy.spearman == pytest.approx(-1.0) and by_proxy.kendall == pytest.approx(-1.0)
    assert rep.picked_arch == "a10" and rep.picked_truth == 10.0 and rep.best_arch == "a59"
    # 3 points: the bootstrap is degenerate (3 ordered points resample to [-1, -1]), so no interval is claimed
    assert math.isnan(by_proxy.spearman_low) and math.isnan(by_truth.kendall_high)
    (row,) = [line for line in format_reports([rep]).splitlines() if line.startswith("p               top by proxy")]
    assert row.split()[4:] == ["3", "0", "-1.000", "[no", "CI]", "-1.000", "[no", "CI]"]
    assert math.isfinite(rep.correlations["all"].spearman_low)
    metrics = rep.metrics()
    assert metrics["top_truth.spearman"] == pytest.approx(0.5) and metrics["top_proxy.n"] == 3
    assert {"spearman_low", "kendall_high", "top_truth.spearman_low"} <= set(metrics)


def test_failed_proxy_trial_is_ranked_last_and_counted() -> None:
    """The proxy agrees with the truth on a0..a3 but failed on a4, the truly best: ranked last (not dropped), so
    by hand proxy ranks (2, 3, 4, 5, 1) against (1, 2, 3, 4, 5): rho = 1 - 6*(4*1 + 16)/(5*24) = 0, and
    tau = (6 concordant - 4 discordant)/10 = 0.2.  Dropping a4 would claim a perfect 1.0."""
    truth = _results([0.1, 0.2, 0.3, 0.4, 0.5])
    proxy = _results([0.3, 0.4, 0.5, 0.6]) | {"a4": ArchResult(math.nan, 0.0, "FAIL", "nan_loss"),
                                              "new": ArchResult(0.9, 1.0, "COMPLETE")}  # no truth: not compared
    r = compare("p", proxy, truth)
    assert r.n == 5 and r.correlations["all"].failed == 1 and r.failed == {"a4": "nan_loss"}
    assert r.spearman == pytest.approx(0.0) and r.kendall == pytest.approx(0.2)
    assert r.correlations["top_proxy"].failed == 0 and r.correlations["top_truth"].failed == 1  # a4 is top by truth
    # two failures tie for last place, as scipy ranks (0, 0) below every accuracy
    two = compare("p", proxy | {"a3": ArchResult(math.nan, 0.0, "FAIL", "input_too_small")}, truth)
    expected = stats.spearmanr([0.3, 0.4, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5]).statistic
    assert two.spearman == pytest.approx(expected) and two.correlations["all"].failed == 2
    # a failed whole-data training is ranked last on the truth side, and counted
    bad_truth = compare("p", _results([0.1, 0.2, 0.3]), _results([0.1, 0.2]) | {"a2": ArchResult(math.nan, 0, "FAIL")})
    assert bad_truth.truth_failed == 1 and bad_truth.spearman == pytest.approx(-0.5)
    assert "1 failed whole-data training (ranked last)" in format_reports([bad_truth])
    flat = compare("p", _results([0.5, 0.5, 0.5]), truth)
    assert math.isnan(flat.spearman)  # a constant ranking has no rank correlation


def _correlated(n: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.random.default_rng(seed).multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    return z[:, 0], z[:, 1]


def test_bootstrap_intervals_cover_the_true_correlation() -> None:
    """Bivariate normal with Pearson r: population Spearman 6/pi asin(r/2), Kendall 2/pi asin(r).  A 95% interval
    must cover them in most of 100 seeded draws, without being uselessly wide."""
    r, n = 0.6, 50
    true_rho, true_tau = 6 / math.pi * math.asin(r / 2), 2 / math.pi * math.asin(r)
    hits_rho = hits_tau = 0
    widths = []
    for seed in range(100):
        c = correlate(*_correlated(n, r, seed), n_boot=1000, seed=seed)
        hits_rho += c.spearman_low <= true_rho <= c.spearman_high
        hits_tau += c.kendall_low <= true_tau <= c.kendall_high
        widths.append(c.spearman_high - c.spearman_low)
    assert hits_rho >= 90 and hits_tau >= 90, (hits_rho, hits_tau)
    assert np.mean(widths) < 0.5
    assert correlate(*_correlated(n, r, 0), seed=1) == correlate(*_correlated(n, r, 0), seed=1)  # seeded


def test_paired_difference_excludes_zero_only_when_one_proxy_is_clearly_better() -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=40)
    truth = {f"a{i:02d}": ArchResult(float(v), 1.0, "COMPLETE") for i, v in enumerate(g)}
    good = {a: ArchResult(r.accuracy + 0.1 * rng.normal(), 1.0, "COMPLETE") for a, r in truth.items()}
    bad = {a: ArchResult(r.accuracy + 1.5 * rng.normal(), 1.0, "COMPLETE") for a, r in truth.items()}
    # nearly the good proxy: one pair of its architectures swapped
    near = dict(good)
    first, second = sorted(good, key=lambda a: good[a].accuracy)[10:12]
    near[first], near[second] = good[second], good[first]
    diffs = {(d.a, d.b, d.over): d for d in differences({"good": good, "bad": bad, "near": near}, truth, n_boot=1000)}
    clear = diffs["good", "bad", "all"]
    assert clear.n == 40 and clear.diff > 0.2 and clear.low > 0 and clear.excludes_zero()
    assert "good ranks better" in clear.verdict()
    assert diffs["bad", "near", "all"].high < 0  # order of the pair does not matter
    close = diffs["good", "near", "all"]
    assert not close.excludes_zero() and "indistinguishable" in close.verdict()
    # paired: one swap moves both proxies' resampled Spearman together, so the interval is far narrower than
    # either proxy's own interval
    own = compare("bad", bad, truth, n_boot=1000).correlations["all"]
    assert close.high - close.low < 0.05 < own.spearman_high - own.spearman_low
    top = diffs["good", "bad", "top_truth"]
    assert top.n == top_count(40) == 3 and math.isnan(top.low) and "[no CI]" in top.verdict()


def test_report_figures_show_the_top_band_failures_and_fig8(tmp_path: Path) -> None:
    truth = _results([0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.8, 0.4])
    results = {"p": _results([1, 5, 3, 9, 7, 2, 8, 4]) | {"a1": ArchResult(math.nan, 0.0, "FAIL", "nan_loss")},
               "q": _results([0.3, 0.1, 0.2, 0.5, 0.4, 0.8, 0.9, 0.6])}
    reports = {n: compare(n, res, truth) for n, res in results.items()}
    fig = scatter_figure({n: (results[n], reports[n]) for n in results}, truth)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"top 3 by truth", "top 3 by proxy", "proxy failed (ranked last)", "picked"} <= set(labels)
    assert "1 failed" in fig.axes[0].get_title()
    fig8 = top_distribution_figure({n: (results[n], reports[n]) for n in results}, truth)
    ticks = [t.get_text() for t in fig8.axes[0].get_xticklabels()]
    assert ticks == ["p\nproxy acc.", "p\nwhole-data acc.", "q\nproxy acc.", "q\nwhole-data acc.",
                     "true top 3\nwhole-data acc."]
    # the q proxy's top 3 (a6, a5, a7) have whole-data accuracies 0.8, 0.2, 0.4: drawn as the 4th group
    points = fig8.axes[0].collections[3].get_offsets()[:, 1]
    assert sorted(points) == pytest.approx([0.2, 0.4, 0.8])
    fig8.savefig(tmp_path / "fig8.png")
    assert (tmp_path / "fig8.png").stat().st_size > 1000


# ---------------------------------------------------------------- CLI


@pytest.mark.slow  # worker processes / MLflow: ~30-60 s each on 2 idle cores
def test_cli_reports_and_logs_to_mlflow(tiny_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from ddfad_apps.cli.main import cli

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["nas", "--proxy", "random", "--proxy", "early-stopping", "--dataset", str(tiny_folder),
            "--restrict", "depth=1,2", "--restrict", "width=32", "--restrict", "activation=relu",
            "--restrict", "norm=none", "--restrict", "pooling=none,max", "--sample", "3", "--cpc", "2",
            "--epochs", "2", "--truth-epochs", "1", "--out", str(tmp_path / "out"), "--tracking-uri", uri,
            "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "spearman" in result.output and "early-stopping" in result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["proxy"] for r in report["reports"]] == ["random", "early-stopping"]
    assert len(report["sample"]) == 3 and set(report["trials"]["full"]) == set(report["sample"])
    assert (tmp_path / "out" / "scatter.png").stat().st_size > 1000
    assert (tmp_path / "out" / "fig8.png").stat().st_size > 1000
    first = report["reports"][0]
    assert first["top_n"] == 3 and set(first["correlations"]) == {"all", "top_truth", "top_proxy"}
    assert [(d["a"], d["b"]) for d in report["differences"]] == [("random", "early-stopping")] * 2
    assert "top 5% = 3 of 3 architectures" in result.output and "paired bootstrap" in result.output

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ddfad-nas").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.data.tags["proxy"] for c in children) == ["early-stopping", "random"]
    assert "random.spearman" in parent.data.metrics and "random.top_truth.n" in parent.data.metrics
    history = client.get_metric_history(children[0].info.run_id, "proxy_accuracy")
    assert len(history) == 3

    # a second run reuses the ground truth: no new whole-data trials
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "ground truth: 3 of 3 architectures cached" in again.output
    rep2 = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["truth_trained"], rep2["truth_trained"], rep2["truth_cached"]) == (3, 0, 3)
    assert rep2["trials"]["full"] == report["trials"]["full"]


def _nas_args(folder: Path, out: Path, *extra: str) -> list[str]:
    """A tiny ``ddfad-apps nas`` run: 2 of 4 cheap architectures, early stopping only, MLflow inside ``out``."""
    return ["nas", "--proxy", "early-stopping", "--dataset", str(folder), "--restrict", "depth=1,2",
            "--restrict", "width=32", "--restrict", "activation=relu", "--restrict", "norm=none",
            "--restrict", "pooling=none,max", "--sample", "2", "--truth-epochs", "1", "--workers", "2",
            "--out", str(out), "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}", "--no-progress", *extra]


def _child_of_this_test(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except OSError:
        return False


def _kill_workers_mid_trial(journal: Path, how_many: int, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL up to ``how_many`` worker processes (children of this test only), each while it runs a trial."""
    while not journal.exists():
        if stop.wait(0.1):
            return
    storage = make_storage(f"journal:{journal}")
    while len(killed) < how_many and not stop.wait(0.1):
        for name in optuna.get_all_study_names(storage):
            for t in optuna.load_study(study_name=name, storage=storage).get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,)):
                owner = owner_of(t)
                if len(killed) < how_many and owner and owner["pid"] not in killed \
                        and _child_of_this_test(owner["pid"]):  # both workers may be mid-trial in one pass
                    os.kill(owner["pid"], signal.SIGKILL)
                    killed.append(owner["pid"])


@pytest.mark.slow  # worker processes / MLflow: ~30-60 s each on 2 idle cores
@pytest.mark.parametrize("kill", [1, 2])
def test_cli_survives_a_dead_worker_and_fails_only_when_trials_are_missing(tiny_folder: Path, tmp_path: Path,
                                                                           kill: int) -> None:
    from click.testing import CliRunner

    from ddfad_apps.cli.main import cli

    out = tmp_path / "out"
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_workers_mid_trial, args=(out / "nas.journal", kill, stop, killed))
    killer.start()
    try:  # 300 whole-data epochs: a trial lasts long enough to be caught running
        result = CliRunner().invoke(cli, _nas_args(tiny_folder, out, "--es-epochs", "300"))
    finally:
        stop.set()
        killer.join()
    assert len(killed) == kill, result.output
    died = f"{kill} of 2 workers died (pid {killed[0]} exit code -9 (SIGKILL)"
    if kill == 1:  # the survivor re-ran the lost trial: a warning, a report, success
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert "WARNING" in result.output and died in result.output and "study is complete" in result.output
        report = json.loads((out / "report.json").read_text())
        assert set(report["trials"]["early-stopping"]) == set(report["sample"]) == set(report["trials"]["full"])
        assert all(math.isfinite(r["accuracy"]) for r in report["trials"]["early-stopping"].values())
    else:  # nobody left to re-run the lost trials: a clear error, no report
        assert result.exit_code == 1, result.output
        assert "is incomplete" in result.output and "architectures have no result" in result.output
        assert "workers died" in result.output and "exit code -9 (SIGKILL)" in result.output
        assert not (out / "report.json").exists()


@pytest.mark.slow  # worker processes / MLflow: ~30-60 s each on 2 idle cores
def test_cli_never_writes_the_storage_password(tiny_folder: Path, tmp_path: Path, postgres_url: str) -> None:
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from ddfad_apps.cli.main import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, _nas_args(tiny_folder, out, "--storage", postgres_url, "--es-epochs", "1"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    secret = "s3cret"  # in the URL as s3cret%40Pg, the password itself is s3cret@Pg
    assert secret not in result.output and redact_url(postgres_url) in result.output
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {"report.json", "mlflow.db"} <= {p.name for p in written}
    assert len(list((out / "jobs").glob("*.json"))) == 2  # the workers' job files (proxy and ground truth)
    assert [p for p in written if secret.encode() in p.read_bytes()] == []
    assert json.loads((out / "report.json").read_text())["storage"] == redact_url(postgres_url)
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ddfad-nas").experiment_id])
    assert runs and all(secret not in f"{r.data.params} {r.data.tags}" for r in runs)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.params["storage"] == redact_url(postgres_url)


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ddfad_apps.cli.main import cli

    bad = CliRunner().invoke(cli, ["nas", "--restrict", "width=48", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "not in space" in bad.output
    bad = CliRunner().invoke(cli, ["nas", "--sampler", "tpe", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--n-trials" in bad.output
