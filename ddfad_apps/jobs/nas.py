"""The architecture-search job (DDFAD Sec. 5.2): rank a search space with cheap proxies and check the ranking.

For each proxy the architectures (the whole space, a stratified ``sample`` or an Optuna budget) are trained on
the proxy by ``workers`` processes joined through ``storage``; the same architectures' whole-data accuracy (the
ground truth, a study of its own that every proxy and later run reuses) is computed the same way; the rank
correlations (with bootstrap intervals and paired proxy differences), picks and times go to ``out``
(``report.json``, ``report.txt``, ``scatter.png``, ``fig8.png``: the top 5%'s accuracy distributions) and to MLflow.
:func:`join_nas_job` only adds workers to a job that another process runs (no report, no MLflow run).
A storage URL's password is never written or shown: only :func:`~ddfad_apps.tracking.redact.redact_url`'s form.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddfad_apps.jobs.data import Say, feature_config, load_splits, open_dataset
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
    feature: str = "fd_mfcc"
    duration: float | None = None


@dataclass
class NASSearchResult:
    """The per-proxy reports (rank correlations, picks), their text, the saved report and the wall time."""

    reports: list[Any]
    text: str
    report: dict[str, Any]
    out: Path
    seconds: float


@dataclass
class _Plan:
    """What a nas job evaluates, worked out once for :func:`run_nas_job` and :func:`join_nas_job` alike."""

    search: Any
    archs: list[str] | None
    storage: str
    shown: str
    short: str
    features: Any
    studies: dict[str, Any]
    truth_job: Any


def _plan(job: NASSearchJob) -> _Plan:
    """Check ``job``'s settings and name its studies (one per proxy, and the ground truth's)."""
    from ddfad_apps.nas.ground_truth import ground_truth_job
    from ddfad_apps.nas.job import NASJob
    from ddfad_apps.nas.proxies import proxy_spec
    from ddfad_apps.nas.space import resolve_space, stratified_sample
    from ddfad_apps.nas.study import default_storage, features_tag, study_name
    from ddfad_apps.tracking.redact import redact_url

    features = feature_config(job.feature)  # refuses an unknown kind before any work
    if job.sampler != "grid" and job.n_trials is None:
        raise JobSettingsError(f"--sampler {job.sampler} needs --n-trials")
    if job.sampler == "grid" and job.n_trials is not None:
        raise JobSettingsError("--n-trials applies to --sampler tpe/random; grid evaluates every architecture once")
    try:
        search = resolve_space(job.space, job.restriction)
    except ValueError as exc:
        raise JobSettingsError(str(exc)) from exc
    distinct = min(job.sample, search.size) if job.sample else search.size
    if job.n_trials is not None and job.n_trials > distinct:
        # each trial trains a distinct architecture (a repeat is a FAIL trial): more could never finish
        raise JobSettingsError(f"--n-trials {job.n_trials} is more than the {distinct} distinct architectures "
                               f"{'of the sample' if job.sample else 'of space ' + search.name}; use at most "
                               f"{distinct} (or --sampler grid to evaluate them all)")
    archs = [search.key(c) for c in stratified_sample(search, job.sample, job.seed)] if job.sample else None
    job.out.mkdir(parents=True, exist_ok=True)
    storage = job.storage or default_storage(job.out)
    short = open_dataset(job.dataset, job.data_root)[0].name  # also refuses --data-root with a folder data set

    studies: dict[str, NASJob] = {}
    for name in job.proxies:
        try:
            whole = proxy_spec(name).whole_data  # early stopping: the whole training set for a few epochs
            overrides = {"epochs": job.es_epochs if name == "early-stopping" else None if whole else job.epochs,
                         "seed": job.seed}
            if not whole:
                overrides.update(cpc=job.cpc, preset=job.preset, method=job.method if name == "distilled" else None)
            spec = proxy_spec(name, **overrides)
        except ValueError as exc:
            raise JobSettingsError(str(exc)) from exc
        studies[name] = NASJob(storage=storage, study=study_name(short, search.name, spec.digest(), archs, name,
                                                                 features=features_tag(job.feature, job.duration)),
                               dataset=job.dataset, proxy=spec, space=job.space, restriction=job.restriction,
                               archs=archs, sampler=job.sampler, n_trials=job.n_trials, data_root=job.data_root,
                               device=job.device, seed=job.seed, threads=job.threads, feature=job.feature,
                               duration=job.duration)
    truth_job = ground_truth_job(next(iter(studies.values())),
                                 proxy_spec("full", epochs=job.truth_epochs, seed=job.seed))
    # ``storage`` itself goes to the workers only; what is written and shown is the redacted form
    return _Plan(search, archs, storage, redact_url(storage), short, features, studies, truth_job)


def _evaluate(job: NASSearchJob, plan: _Plan, progress: bool, say: Say):
    """Run every proxy's study, then the ground truth of the architectures they hold, with ``job.workers``
    workers of this process; returns (results per proxy, proxy-set seconds, truth, truths trained now)."""
    from ddfad_apps.nas.runner import NASRunError, run_study
    from ddfad_apps.tracking.redact import redact_text

    results, makes = {}, {}
    try:
        for name, study in plan.studies.items():
            results[name], makes[name] = run_study(study, job.workers, job.out, progress=progress, echo=say)
        configs = [plan.search.parse(a) for a in sorted({a for r in results.values() for a in r})]
        truth, truth_trained = _ground_truth(job, plan.truth_job, plan.search, configs, progress, say)
    except (NASRunError, OSError, ValueError) as exc:
        raise JobError(redact_text(str(exc), plan.storage)) from None  # a driver may quote the URL
    return results, makes, truth, truth_trained


def join_nas_job(job: NASSearchJob, progress: bool = True, say: Say = print) -> int:
    """Add ``job.workers`` worker(s) to the same job that another process is running (same ``out`` or
    ``storage``): evaluate its studies' trials beside that process's workers, each architecture once between
    them, and return when every study is complete.  Writes no report and logs nothing: the other process
    does.  Returns how many architectures the ground truth holds (proxies' results are in the studies)."""
    plan = _plan(job)
    say(f"joining the nas job in {job.out} (storage {plan.shown}) with {job.workers} worker(s)")
    *_, truth, _ = _evaluate(job, plan, progress, say)
    return len(truth)


def run_nas_job(job: NASSearchJob, progress: bool = True, say: Say = print) -> NASSearchResult:
    """Run every proxy's study and the ground truth's, compare, write and log the report.

    Another process may add workers to the same job with :func:`join_nas_job`."""
    from ddfad_apps.nas.report import (
        compare,
        differences,
        format_reports,
        scatter_figure,
        top_distribution_figure,
    )

    plan = _plan(job)
    search, archs, studies, truth_job, features = plan.search, plan.archs, plan.studies, plan.truth_job, plan.features
    shown, short = plan.shown, plan.short
    count = len(archs) if archs else (job.n_trials if job.sampler != "grid" else search.size)
    say(f"{search.name}: {search.size} architectures; evaluating {count} with {job.sampler} on {job.dataset}, "
        f"proxies {', '.join(job.proxies)}; storage {shown}; {job.workers} worker(s)")

    started = time.perf_counter()
    results, makes, truth, truth_trained = _evaluate(job, plan, progress, say)
    reports = [compare(name, results[name], truth, make_seconds=makes[name], seed=job.seed) for name in studies]
    diffs = differences({name: results[name] for name in studies}, truth, seed=job.seed)
    text = format_reports(reports, diffs)
    wall = time.perf_counter() - started
    report = {"space": search.name, "sample": archs, "dataset": job.dataset, "storage": shown,
              "features": features.as_dict(), "duration": job.duration, "sampler": job.sampler, "truth": truth_job.proxy.as_dict(),
              "proxies": {n: s.proxy.as_dict() for n, s in studies.items()},
              "reports": [r.as_dict() for r in reports], "differences": [vars(d) for d in diffs],
              "wall_seconds": wall, "truth_trained": truth_trained, "truth_cached": len(truth) - truth_trained,
              "trials": {n: {a: vars(r) for a, r in res.items()} for n, res in {**results, "full": truth}.items()}}
    (job.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (job.out / "report.txt").write_text(text + "\n")
    fig = scatter_figure({n: (results[n], r) for n, r in zip(studies, reports)}, truth)
    fig.savefig(job.out / "scatter.png", dpi=120)
    fig8 = top_distribution_figure({n: (results[n], r) for n, r in zip(studies, reports)}, truth)
    fig8.savefig(job.out / "fig8.png", dpi=120)
    _log_mlflow(job, report, reports, results, truth, fig, text, short, search.name, fig8=fig8, diffs=diffs)
    return NASSearchResult(reports, text, report, job.out, wall)


def _ground_truth(job: NASSearchJob, truth_job, search, configs: list[dict], progress: bool, say: Say):
    """Whole-data results of ``configs``: from the portable cache (:mod:`ddfad_apps.nas.truths`), the missing ones
    computed by the ground-truth study's workers and added to it.  Returns (results, how many were trained)."""
    from ddfad_apps.nas.runner import run_study
    from ddfad_apps.nas.truths import TruthCache

    splits = truth_job.load_splits(progress=False)
    cache = TruthCache(job.dataset, splits.train, splits.test, truth_job.proxy)
    truth = cache.get_many(search, configs)
    missing = [c for c in configs if search.key(c) not in truth]
    say(f"ground truth: {len(truth)} of {len(configs)} architectures cached in {cache.path}")
    if missing:
        fresh, _ = run_study(truth_job, job.workers, job.out, progress=progress, echo=say, configs=missing)
        cache.put(search, fresh)
        truth.update(fresh)
    return truth, len(missing)


def _log_mlflow(job: NASSearchJob, report, reports, results, truth, fig, text, dataset, space, fig8=None,
                diffs=()) -> None:
    """One parent run (params, summary metrics, artifacts) and one nested run per proxy with a metric per trial."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run

    params = {"dataset": dataset, "space": space, "sampler": report["sampler"], "storage": report["storage"],
              "features": report["features"], "duration": report["duration"],
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


@dataclass
class NASAnytimeJob:
    """The anytime comparison (:mod:`ddfad_apps.nas.anytime`): strategies under one CPU-seconds budget, seeds."""

    strategies: tuple[str, ...] = ("proxy-grid", "hyperband")
    proxies: tuple[str, ...] = ("distilled",)
    dataset: str = "fsdd"
    space: str = "convnet720"
    restriction: dict[str, list[str]] = field(default_factory=dict)
    sample: int | None = 48
    budget_seconds: float = 600.0
    seeds: int = 3
    target: float = 0.99
    set_cost: bool = True
    cpc: int | None = None
    method: str | None = None
    preset: str | None = None
    epochs: int | None = None
    truth_epochs: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    data_root: str | None = None
    device: str = "cpu"
    threads: int = 1
    out: Path = field(default_factory=lambda: Path("nas-anytime"))  # anytime.json/png/txt; MLflow gets them too
    feature: str = "fd_mfcc"
    duration: float | None = None
    tracking_uri: str | None = None
    experiment: str = "ddfad-nas"


@dataclass
class NASAnytimeResult:
    """The summary per strategy (curves per seed, time to target), its JSON, the figure and the text."""

    report: dict[str, Any]
    text: str
    out: Path


MAX_ANYTIME_CANDIDATES = 200  # every candidate's ground truth is needed (the best sampled sets the target)


def run_nas_anytime_job(job: NASAnytimeJob, progress: bool = True, say: Say = print) -> NASAnytimeResult:
    """Run every strategy under every seed with the same CPU budget; write ``anytime.json`` and ``anytime.png``."""
    import torch

    from ddfad_apps.evidence.protocol import EvalProtocol
    from ddfad_apps.nas.anytime import (
        STRATEGIES,
        Trainer,
        curve_figure,
        run_strategies,
        summarize_runs,
    )
    from ddfad_apps.nas.proxies import proxy_spec, proxy_train_set
    from ddfad_apps.nas.space import resolve_space, stratified_sample
    from ddfad_apps.nas.truths import TruthCache, compute_truths
    from ddfad_apps.storage.atomic import atomic_write

    features = feature_config(job.feature)
    unknown = sorted(set(job.strategies) - set(STRATEGIES))
    if not job.strategies or unknown:
        raise JobSettingsError(f"unknown strategies {unknown}; use {', '.join(STRATEGIES)}")
    if not job.budget_seconds > 0 or job.seeds < 1 or not 0 < job.target <= 1:
        raise JobSettingsError(f"need --budget-seconds > 0 (got {job.budget_seconds}), --seeds >= 1 (got "
                               f"{job.seeds}) and 0 < --target <= 1 (got {job.target})")
    try:
        search = resolve_space(job.space, job.restriction)
        truth_spec = proxy_spec("full", epochs=job.truth_epochs, seed=job.seed)
        specs = {}
        if any(s != "hyperband" for s in job.strategies):
            for name in job.proxies:
                whole = proxy_spec(name).whole_data
                specs[name] = proxy_spec(name, seed=job.seed, **({} if whole else dict(
                    epochs=job.epochs, cpc=job.cpc, preset=job.preset,
                    method=job.method if name == "distilled" else None)))
    except ValueError as exc:
        raise JobSettingsError(str(exc)) from exc
    configs = stratified_sample(search, job.sample, job.seed) if job.sample else list(search.configs())
    if len(configs) > MAX_ANYTIME_CANDIDATES:
        raise JobSettingsError(f"{len(configs)} candidate architectures: the comparison needs every candidate's "
                               f"ground truth; use --sample N (N <= {MAX_ANYTIME_CANDIDATES}) or --restrict")
    archs = [search.key(c) for c in configs]
    ref = open_dataset(job.dataset, job.data_root)[0]
    short = ref.name
    torch.set_num_threads(job.threads)
    splits = load_splits(ref, job.data_root, progress=progress, config=features, duration=job.duration)
    try:
        carved = EvalProtocol(val_fraction=job.val_fraction, carve_seed=job.seed).carve(splits.train)
    except ValueError as exc:
        raise JobError(f"{job.dataset}: {exc}") from exc
    say(f"{short}: {len(archs)} candidates of {search.name}; strategies {', '.join(job.strategies)}; budget "
        f"{job.budget_seconds:g} CPU s (process time, {job.threads} torch thread(s)); {job.seeds} seed(s); "
        f"choosing on {len(carved.val)} validation clips carved from {len(splits.train)} training clips")
    proxy_trainers = {}
    for name, spec in specs.items():
        data, lr, info = proxy_train_set(spec, carved.fit, device=job.device, progress=progress)
        proxy_trainers[name] = (Trainer(search, data, carved.val, spec, learned_lr=lr, device=job.device),
                                info["make_cpu_seconds"] if job.set_cost else 0.0)
        say(f"proxy {name}: {info['clips']} clips, set cost {info['make_cpu_seconds']:.0f} CPU s "
            f"({'charged' if job.set_cost else 'not charged'})")
    whole = Trainer(search, carved.fit, carved.val, truth_spec, device=job.device)
    seeds = [job.seed + i for i in range(job.seeds)]
    runs = run_strategies(job.strategies, archs, seeds, job.budget_seconds, proxy_trainers=proxy_trainers,
                          whole=whole, progress=say)
    cache = TruthCache(job.dataset, splits.train, splits.test, truth_spec)
    truths, trained = compute_truths(cache, search, configs, splits.train, splits.test, device=job.device,
                                     progress=progress)
    truth = {a: r.accuracy for a, r in truths.items()}
    best = max(g for g in truth.values() if g == g)
    target = job.target * best
    summary = summarize_runs(runs, truth, target)
    lines = [f"best sampled architecture: {100 * best:.2f}% ground truth; target {100 * job.target:g}% of it = "
             f"{100 * target:.2f}%; budget {job.budget_seconds:g} CPU s"]
    for name, entry in summary.items():
        t = entry["time_to_target"]
        finals = [s["curve"][-1]["truth"] for s in entry["seeds"].values() if s["curve"]]
        when = (f"mean {t['mean']:.0f} s [{t['ci_low'] or float('-inf'):.0f}, {t['ci_high'] or float('inf'):.0f}]"
                if t else f"median {entry['time_to_target_median']:.0f} s" if entry["time_to_target_median"]
                else "not reached by most seeds")
        lines.append(f"{name:<28} reached {entry['reached']}, time to target {when}; final best-so-far "
                     f"{', '.join(f'{100 * g:.2f}' for g in finals)}%")
    text = "\n".join(lines)
    report = {"dataset": job.dataset, "space": search.name, "candidates": archs, "budget_seconds": job.budget_seconds,
              "features": features.as_dict(), "duration": splits.train.meta.get("duration"),
              "clock": "time.process_time() of the search process (all threads), torch threads fixed",
              "threads": job.threads, "seeds": seeds, "target_fraction": job.target, "target": target,
              "best_truth": best, "truth": {a: vars(r) for a, r in truths.items()},
              "truth_recipe": truth_spec.as_dict(), "truth_cache": cache.path.name, "truth_trained_now": trained,
              "proxies": {n: s.as_dict() for n, s in specs.items()}, "set_cost_charged": job.set_cost,
              "validation": carved.as_dict(), "strategies": summary}
    job.out.mkdir(parents=True, exist_ok=True)
    atomic_write(job.out / "anytime.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1, default=str)))
    fig = curve_figure(summary, job.budget_seconds, target, best, f"{short}: {len(archs)} candidates")
    atomic_write(job.out / "anytime.png", lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    atomic_write(job.out / "anytime.txt", lambda tmp: tmp.write_text(text + "\n"))
    _log_anytime_mlflow(job, report, short)
    return NASAnytimeResult(report, text, job.out)


def _strategy_metrics(name: str, entry: dict[str, Any]) -> dict[str, float]:
    """One strategy's summary as MLflow metrics: time to target (mean and interval when every seed reached it, else
    the median when most did), how many seeds reached it, and the final best-so-far ground truth over seeds."""
    seeds = list(entry["seeds"].values())
    finals = [s["curve"][-1]["truth"] for s in seeds if s["curve"]]
    out = {f"{name}.reached_seeds": sum(s["time_to_target"] is not None for s in seeds),
           f"{name}.evaluated_mean": sum(s["evaluated"] for s in seeds) / len(seeds)}
    if finals:
        out[f"{name}.final_truth_mean"] = sum(finals) / len(finals)
    t = entry["time_to_target"]
    if t:
        out.update({f"{name}.time_to_target{k}": t[v] for k, v in
                    (("", "mean"), ("_low", "ci_low"), ("_high", "ci_high")) if t.get(v) is not None})
    if entry["time_to_target_median"] is not None:
        out[f"{name}.time_to_target_median"] = entry["time_to_target_median"]
    return out


def _log_anytime_mlflow(job: NASAnytimeJob, report: dict[str, Any], dataset: str) -> None:
    """One run: the comparison's settings as params, each strategy's summary as metrics, and the files written
    (``anytime.json``, ``anytime.png``, ``anytime.txt``) as artifacts, as :func:`_log_mlflow` does for the report."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run

    params = {"dataset": dataset, "space": report["space"], "candidates": len(report["candidates"]),
              "strategies": list(job.strategies), "budget_seconds": job.budget_seconds, "seeds": report["seeds"],
              "target_fraction": job.target, "threads": job.threads, "features": report["features"],
              "duration": report["duration"], "truth": report["truth_recipe"], "proxies": report["proxies"],
              "set_cost_charged": job.set_cost, "validation": report["validation"]}
    try:
        with tracking_run(job.experiment, f"{dataset}-{report['space']}-anytime", params, job.tracking_uri,
                          tags={"command": "nas", "mode": "anytime"}) as run:
            run.metrics({"best_truth": report["best_truth"], "target": report["target"],
                         "truth_trained_now": report["truth_trained_now"]})
            for name, entry in report["strategies"].items():
                run.metrics(_strategy_metrics(name, entry))
            for name in ("anytime.json", "anytime.png", "anytime.txt"):
                run.artifact(job.out / name)
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
