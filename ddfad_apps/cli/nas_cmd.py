"""``ddfad-apps nas``: rank the ConvNet search space with cheap proxies and check the ranking (DDFAD Sec. 5.2).

For each ``--proxy`` the architectures (whole space, a stratified ``--sample`` or an Optuna budget) are trained
on the proxy by ``--workers`` processes joined through ``--storage``; the same architectures' whole-data
accuracy (the ground truth, a study of its own that every proxy and later run reuses) is computed the same
way; the rank correlations, picks and times are printed and logged to MLflow with a scatter plot.  Running
the same command with the same ``--storage`` on another machine joins the studies as more workers.

A storage URL's password is never written or shown (report, job files, MLflow, console): only its redacted form
(:func:`ddfad_apps.tracking.redact.redact_url`); the workers get the real URL in their environment.  A worker
that dies is a warning when the others complete the study, an error only when architectures are left without
a result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ddfad_apps.data.registry import DATASETS, short_name


def _restriction(items: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected DIM=V1,V2 (e.g. width=32,64)", param_hint="--restrict")
        dim, values = item.split("=", 1)
        out[dim.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return out


@click.command()
@click.option("--proxy", "proxies", multiple=True, default=("distilled",), show_default=True,
              type=click.Choice(["distilled", "random", "herding", "early-stopping"]),
              help="Proxy to evaluate (repeat for several; they share one ground truth).")
@click.option("--dataset", default="fsdd", show_default=True, metavar="NAME|DIR",
              help=f"Data set name ({', '.join(sorted(DATASETS))}) or a folder with one sub-folder per class.")
@click.option("--space", default="convnet720", show_default=True, help="Registered search space (search_spaces).")
@click.option("--restrict", "restrict", multiple=True, metavar="DIM=V1,V2",
              help="Keep only these values of a dimension (repeatable), e.g. width=32,64 on a CPU.")
@click.option("--sample", type=click.IntRange(min=1), default=None,
              help="Evaluate a stratified sample of N architectures instead of the whole space.")
@click.option("--sampler", type=click.Choice(["grid", "tpe", "random"]), default="grid", show_default=True,
              help="grid: every architecture once; tpe/random: a budget of --n-trials trials.")
@click.option("--n-trials", type=click.IntRange(min=1), default=None, help="Trial budget for tpe/random.")
@click.option("--storage", default=None, metavar="URL",
              help="journal:PATH (default <out>/nas.journal), sqlite:///PATH or postgresql://user[:password]@host/db "
                   "(the password is never written or shown).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine.")
@click.option("--cpc", type=click.IntRange(min=1), default=None, help="Clips per class of the small proxies (default 20).")
@click.option("--method", default=None, help="Distillation method of the distilled proxy (default mtt).")
@click.option("--preset", type=click.Choice(["fast", "paper"]), default=None, help="Distillation preset (default fast).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs on the proxy set.")
@click.option("--es-epochs", type=click.IntRange(min=1), default=None, help="Epochs of the early-stopping proxy (default 1).")
@click.option("--truth-epochs", type=click.IntRange(min=1), default=None, help="Whole-data epochs of the ground truth (default 5).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample, the proxy sets and the weights.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Folder holding the data sets.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (every worker uses it).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Torch threads per worker.")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI).")
@click.option("--experiment", default="ddfad-nas", show_default=True, help="MLflow experiment name.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("nas-out"),
              show_default=True, help="Folder for the journal, job files, worker logs, report and plot.")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
def nas(proxies: tuple[str, ...], dataset: str, space: str, restrict: tuple[str, ...], sample: int | None,
        sampler: str, n_trials: int | None, storage: str | None, workers: int, cpc: int | None, method: str | None,
        preset: str | None, epochs: int | None, es_epochs: int | None, truth_epochs: int | None, seed: int,
        data_root: str | None, device: str, threads: int, tracking_uri: str | None, experiment: str,
        out_dir: Path, no_progress: bool) -> None:
    """Neural-architecture search on proxies; reports how well each proxy's ranking matches whole-data training."""
    from ddfad_apps.nas.ground_truth import ground_truth_job
    from ddfad_apps.nas.job import NASJob
    from ddfad_apps.nas.proxies import proxy_spec
    from ddfad_apps.nas.report import compare, format_reports, scatter_figure
    from ddfad_apps.nas.runner import NASRunError, run_study
    from ddfad_apps.nas.space import resolve_space, stratified_sample
    from ddfad_apps.nas.study import default_storage, study_name
    from ddfad_apps.tracking.redact import redact_text, redact_url

    progress = not no_progress
    if sampler != "grid" and n_trials is None:
        raise click.UsageError(f"--sampler {sampler} needs --n-trials")
    if sampler == "grid" and n_trials is not None:
        raise click.UsageError("--n-trials applies to --sampler tpe/random; grid evaluates every architecture once")
    try:
        restriction = _restriction(restrict)
        search = resolve_space(space, restriction)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    archs = [search.key(c) for c in stratified_sample(search, sample, seed)] if sample else None
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(out_dir)
    shown = redact_url(storage)  # what is written and shown; workers get ``storage`` itself
    short = short_name(dataset)

    jobs: dict[str, NASJob] = {}
    for name in proxies:
        overrides = {"epochs": es_epochs if name == "early-stopping" else epochs, "seed": seed}
        if name != "early-stopping":
            overrides.update(cpc=cpc, preset=preset, method=method if name == "distilled" else None)
        try:
            spec = proxy_spec(name, **overrides)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        jobs[name] = NASJob(storage=storage, study=study_name(short, search.name, spec.digest(), archs, name),
                            dataset=dataset, proxy=spec, space=space, restriction=restriction, archs=archs,
                            sampler=sampler, n_trials=n_trials, data_root=data_root, device=device, seed=seed,
                            threads=threads)
    truth_job = ground_truth_job(next(iter(jobs.values())), proxy_spec("full", epochs=truth_epochs, seed=seed))
    click.echo(f"{search.name}: {search.size} architectures; evaluating "
               f"{len(archs) if archs else (n_trials if sampler != 'grid' else search.size)} with {sampler} on "
               f"{dataset}, proxies {', '.join(proxies)}; storage {shown}; {workers} worker(s)")

    started = time.perf_counter()
    results, makes = {}, {}
    try:
        for name, job in jobs.items():
            results[name], makes[name] = run_study(job, workers, out_dir, progress=progress, echo=click.echo)
        evaluated = sorted({a for r in results.values() for a in r})
        configs = [search.parse(a) for a in evaluated]
        truth, _ = run_study(truth_job, workers, out_dir, progress=progress, echo=click.echo, configs=configs)
    except (NASRunError, OSError, ValueError) as exc:
        raise click.ClickException(redact_text(str(exc), storage)) from None  # a driver may quote the URL
    reports = [compare(name, results[name], truth, make_seconds=makes[name]) for name in jobs]
    text = format_reports(reports)
    click.echo(text)
    wall = time.perf_counter() - started

    report = {"space": search.name, "sample": archs, "dataset": dataset, "storage": shown, "sampler": sampler,
              "truth": truth_job.proxy.as_dict(), "proxies": {n: j.proxy.as_dict() for n, j in jobs.items()},
              "reports": [r.as_dict() for r in reports], "wall_seconds": wall,
              "trials": {n: {a: vars(r) for a, r in res.items()} for n, res in {**results, "full": truth}.items()}}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out_dir / "report.txt").write_text(text + "\n")
    fig = scatter_figure({n: (results[n], r) for n, r in zip(jobs, reports)}, truth)
    fig.savefig(out_dir / "scatter.png", dpi=120)
    _log_mlflow(report, reports, results, truth, fig, text, experiment, tracking_uri, short, search.name)
    click.echo(f"report, scatter plot and trials in {out_dir} ({wall:.0f}s)")


def _log_mlflow(report, reports, results, truth, fig, text, experiment, tracking_uri, dataset, space) -> None:
    """One parent run (params, summary metrics, artifacts) and one nested run per proxy with a metric per trial."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run

    params = {"dataset": dataset, "space": space, "sampler": report["sampler"], "storage": report["storage"],
              "sample_size": len(report["sample"]) if report["sample"] else None, "truth": report["truth"],
              "proxies": report["proxies"]}
    try:
        with tracking_run(experiment, f"{dataset}-{space}-nas", params, tracking_uri, tags={"command": "nas"}) as run:
            for rep in reports:
                run.metrics({f"{rep.proxy}.{k}": v for k, v in rep.as_dict().items()
                             if isinstance(v, (int, float)) and v is not None})
            run.figure(fig, "scatter.png")
            run.dict(report, "report.json")
            run.text(text, "report.txt")
            for rep in reports:
                with tracking_run(experiment, f"{rep.proxy}", {"proxy": report["proxies"][rep.proxy]}, tracking_uri,
                                  nested=True, tags={"command": "nas", "proxy": rep.proxy}) as child:
                    for step, (arch, res) in enumerate(sorted(results[rep.proxy].items())):
                        row = {"proxy_accuracy": res.accuracy, "proxy_seconds": res.seconds}
                        if arch in truth:
                            row.update(truth_accuracy=truth[arch].accuracy, truth_seconds=truth[arch].seconds)
                        child.metrics({k: v for k, v in row.items() if v == v}, step=step)
                    child.dict({a: vars(r) for a, r in results[rep.proxy].items()}, "trials.json")
    except MlflowException as exc:
        raise click.ClickException(f"MLflow: {exc}") from exc
