"""The architecture-search job (DDFAD Sec. 5.2): rank a search space with cheap proxies and check the ranking.

For each proxy the architectures (the whole space, a stratified ``sample`` or an Optuna budget) are trained on
the proxy by ``workers`` processes joined through ``storage``; the same architectures' whole-data accuracy (the
ground truth, a study of its own that every proxy and later run reuses) is computed the same way; the rank
correlations (with bootstrap intervals and paired proxy differences), picks and times go to ``out``
(``report.json``, ``report.txt``, ``scatter.png``, ``fig8.png``: the top 5%'s accuracy distributions) and to MLflow.
A storage URL's password is never written or shown: only :func:`~ddfad_apps.tracking.redact.redact_url`'s form.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddfad_apps.jobs.data import Say, open_dataset
from ddfad_apps.jobs.errors import JobError, JobSettingsError


@dataclass
class NASSearchJob:
    """What to search and how: proxies, space (restricted, sampled or budgeted), storage, workers, recipes."""

    proxies: tuple[str, ...] = ("distilled",)
    dataset: str = "fsdd"
    space: str = "convnet720"
    restriction: dict[str, list[str]] = field(default_factory=dict)
    sample: int | None = None
    sampler: str = "grid"
    n_trials: int | None = None
    storage: str | None = None
    workers: int = 1
    cpc: int | None = None
    method: str | None = None
    preset: str | None = None
    epochs: int | None = None
    es_epochs: int | None = None
    truth_epochs: int | None = None
    seed: int = 0
    data_root: str | None = None
    device: str = "cpu"
    threads: int = 1
    tracking_uri: str | None = None
    experiment: str = "ddfad-nas"
    out: Path = field(default_factory=lambda: Path("nas-out"))


@dataclass
class NASSearchResult:
    """The per-proxy reports (rank correlations, picks), their text, the saved report and the wall time."""

    reports: list[Any]
    text: str
    report: dict[str, Any]
    out: Path
    seconds: float


def run_nas_job(job: NASSearchJob, progress: bool = True, say: Say = print) -> NASSearchResult:
    """Run every proxy's study and the ground truth's, compare, write and log the report."""
    from ddfad_apps.nas.ground_truth import ground_truth_job
    from ddfad_apps.nas.job import NASJob
    from ddfad_apps.nas.proxies import proxy_spec
    from ddfad_apps.nas.report import (compare, differences, format_reports, scatter_figure,
                                       top_distribution_figure)
    from ddfad_apps.nas.runner import NASRunError, run_study
    from ddfad_apps.nas.space import resolve_space, stratified_sample
    from ddfad_apps.nas.study import default_storage, study_name
    from ddfad_apps.tracking.redact import redact_text, redact_url

    if job.sampler != "grid" and job.n_trials is None:
        raise JobSettingsError(f"--sampler {job.sampler} needs --n-trials")
    if job.sampler == "grid" and job.n_trials is not None:
        raise JobSettingsError("--n-trials applies to --sampler tpe/random; grid evaluates every architecture once")
    try:
        search = resolve_space(job.space, job.restriction)
    except ValueError as exc:
        raise JobSettingsError(str(exc)) from exc
    archs = [search.key(c) for c in stratified_sample(search, job.sample, job.seed)] if job.sample else None
    job.out.mkdir(parents=True, exist_ok=True)
    storage = job.storage or default_storage(job.out)
    shown = redact_url(storage)  # what is written and shown; workers get ``storage`` itself
    short = open_dataset(job.dataset, job.data_root)[0].name  # also refuses --data-root with a folder data set

    studies: dict[str, NASJob] = {}
    for name in job.proxies:
        overrides = {"epochs": job.es_epochs if name == "early-stopping" else job.epochs, "seed": job.seed}
        if name != "early-stopping":
            overrides.update(cpc=job.cpc, preset=job.preset, method=job.method if name == "distilled" else None)
        try:
            spec = proxy_spec(name, **overrides)
        except ValueError as exc:
            raise JobSettingsError(str(exc)) from exc
        studies[name] = NASJob(storage=storage, study=study_name(short, search.name, spec.digest(), archs, name),
                               dataset=job.dataset, proxy=spec, space=job.space, restriction=job.restriction,
                               archs=archs, sampler=job.sampler, n_trials=job.n_trials, data_root=job.data_root,
                               device=job.device, seed=job.seed, threads=job.threads)
    truth_job = ground_truth_job(next(iter(studies.values())),
                                 proxy_spec("full", epochs=job.truth_epochs, seed=job.seed))
    count = len(archs) if archs else (job.n_trials if job.sampler != "grid" else search.size)
    say(f"{search.name}: {search.size} architectures; evaluating {count} with {job.sampler} on {job.dataset}, "
        f"proxies {', '.join(job.proxies)}; storage {shown}; {job.workers} worker(s)")

    started = time.perf_counter()
    results, makes = {}, {}
    try:
        for name, study in studies.items():
            results[name], makes[name] = run_study(study, job.workers, job.out, progress=progress, echo=say)
        configs = [search.parse(a) for a in sorted({a for r in results.values() for a in r})]
        truth, _ = run_study(truth_job, job.workers, job.out, progress=progress, echo=say, configs=configs)
    except (NASRunError, OSError, ValueError) as exc:
        raise JobError(redact_text(str(exc), storage)) from None  # a driver may quote the URL
    reports = [compare(name, results[name], truth, make_seconds=makes[name], seed=job.seed) for name in studies]
    diffs = differences({name: results[name] for name in studies}, truth, seed=job.seed)
    text = format_reports(reports, diffs)
    wall = time.perf_counter() - started
    report = {"space": search.name, "sample": archs, "dataset": job.dataset, "storage": shown,
              "sampler": job.sampler, "truth": truth_job.proxy.as_dict(),
              "proxies": {n: s.proxy.as_dict() for n, s in studies.items()},
              "reports": [r.as_dict() for r in reports], "differences": [vars(d) for d in diffs],
              "wall_seconds": wall,
              "trials": {n: {a: vars(r) for a, r in res.items()} for n, res in {**results, "full": truth}.items()}}
    (job.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (job.out / "report.txt").write_text(text + "\n")
    fig = scatter_figure({n: (results[n], r) for n, r in zip(studies, reports)}, truth)
    fig.savefig(job.out / "scatter.png", dpi=120)
    fig8 = top_distribution_figure({n: (results[n], r) for n, r in zip(studies, reports)}, truth)
    fig8.savefig(job.out / "fig8.png", dpi=120)
    _log_mlflow(job, report, reports, results, truth, fig, text, short, search.name, fig8=fig8, diffs=diffs)
    return NASSearchResult(reports, text, report, job.out, wall)


def _log_mlflow(job: NASSearchJob, report, reports, results, truth, fig, text, dataset, space, fig8=None,
                diffs=()) -> None:
    """One parent run (params, summary metrics, artifacts) and one nested run per proxy with a metric per trial."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run

    params = {"dataset": dataset, "space": space, "sampler": report["sampler"], "storage": report["storage"],
              "sample_size": len(report["sample"]) if report["sample"] else None, "truth": report["truth"],
              "proxies": report["proxies"]}
    uri = job.tracking_uri
    try:
        with tracking_run(job.experiment, f"{dataset}-{space}-nas", params, uri, tags={"command": "nas"}) as run:
            for rep in reports:
                run.metrics({f"{rep.proxy}.{k}": v for k, v in rep.metrics().items()})
            for d in diffs:  # e.g. diff.distilled-random.all, .._low, .._high
                run.metrics({f"diff.{d.a}-{d.b}.{d.over}{s}": v for s, v in
                             (("", d.diff), ("_low", d.low), ("_high", d.high))})
            run.figure(fig, "scatter.png")
            if fig8 is not None:
                run.figure(fig8, "fig8.png")
            run.dict(report, "report.json")
            run.text(text, "report.txt")
            for rep in reports:
                with tracking_run(job.experiment, f"{rep.proxy}", {"proxy": report["proxies"][rep.proxy]}, uri,
                                  nested=True, tags={"command": "nas", "proxy": rep.proxy}) as child:
                    for step, (arch, res) in enumerate(sorted(results[rep.proxy].items())):
                        row = {"proxy_accuracy": res.accuracy, "proxy_seconds": res.seconds}
                        if arch in truth:
                            row.update(truth_accuracy=truth[arch].accuracy, truth_seconds=truth[arch].seconds)
                        child.metrics({k: v for k, v in row.items() if v == v}, step=step)
                    child.dict({a: vars(r) for a, r in results[rep.proxy].items()}, "trials.json")
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
