"""Storage, sampler and study factories: Optuna's three parts, each swappable on its own.

* storage: ``journal:PATH`` (default; an append-only file, no server, many processes of one machine),
  ``sqlite:///PATH`` or ``postgresql://...`` (many machines; Optuna's heartbeat re-runs a killed worker's
  trial).  A bare path means a journal file.
* sampler: ``grid`` (every architecture once, through the trial queue: see :mod:`ddfad_apps.nas.workers`),
  ``tpe`` or ``random`` (a budget of trials).
* study: named after data set, space, sample and proxy recipe, so a changed recipe never mixes its results
  into an old study, while every worker given the same settings joins the same one.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from ddfad_apps.distill.fingerprint import settings_digest
from ddfad_apps.tracking.redact import redact_url

SAMPLERS: tuple[str, ...] = ("grid", "tpe", "random")
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
JOURNAL_PREFIX = "journal:"


def default_storage(out_dir: str | Path) -> str:
    return f"{JOURNAL_PREFIX}{Path(out_dir).absolute() / 'nas.journal'}"


def journal_path(url: str) -> Path | None:
    """The journal file of a journal storage URL (``journal:PATH`` or a bare path), else None."""
    if url.startswith(JOURNAL_PREFIX):
        return Path(url[len(JOURNAL_PREFIX):]).expanduser().absolute()
    if "://" not in url:
        return Path(url).expanduser().absolute()
    return None


def make_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS,
                 max_retry: int = 3) -> optuna.storages.BaseStorage:
    """Storage for ``url``; RDB storages get a heartbeat whose stale trials are re-queued (at most ``max_retry``)."""
    path = journal_path(url)
    if path is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(("sqlite:", "postgresql", "postgres:", "mysql")):
        kwargs: dict[str, Any] = {}
        if url.startswith("postgres"):
            url = _postgres_driver(url)
            kwargs["engine_kwargs"] = {"pool_pre_ping": True}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat, grace_period=grace,
            heartbeat_stale_trial_callback=retry, **kwargs)
    raise ValueError(f"unsupported storage {redact_url(url)!r}: use journal:PATH, sqlite:///PATH or postgresql://...")


def _postgres_driver(url: str) -> str:
    """A plain ``postgresql://`` URL with the driver that is installed (SQLAlchemy 2.1 defaults to psycopg 3)."""
    scheme, rest = url.split("://", 1)
    if "+" in scheme:
        return url
    import importlib.util

    for driver in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}://{rest}"
    raise ValueError("PostgreSQL storage needs a driver: pip install psycopg2-binary (ddfad-apps[postgres])")


def make_sampler(name: str, seed: int | None = 0, grid: dict[str, list[Any]] | None = None
                 ) -> optuna.samplers.BaseSampler:
    """``grid`` needs the grid (see :func:`ddfad_apps.nas.space.grid`)."""
    if name == "grid":
        if grid is None:
            raise ValueError("the grid sampler needs the grid")
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


def features_tag(feature: str = "fd_mfcc", duration: float | None = None) -> str:
    """``''`` for the default features (FD-MFCC at the data set's own length, so older studies keep their names),
    else e.g. ``mfcc-d2.5``: trials on other features are never mixed into (or resumed from) another study."""
    parts = [] if feature == "fd_mfcc" else [feature]
    if duration is not None:
        parts.append(f"d{duration:g}")
    return "-".join(parts)


def study_name(dataset: str, space: str, proxy_digest: str, archs: list[str] | None, proxy: str,
               features: str = "") -> str:
    """``nas-<dataset>-<space>-<proxy>-<recipe digest>[-<features tag>][-s<N>-<sample digest>]``."""
    name = f"nas-{dataset}-{space}-{proxy}-{proxy_digest}" + (f"-{features}" if features else "")
    if archs is not None:
        name += f"-s{len(archs)}-{settings_digest(sorted(archs))[:8]}"
    return name


def worker_identity() -> dict[str, Any]:
    """Recorded on every trial, so a trial left RUNNING by a dead process can be recognised."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
