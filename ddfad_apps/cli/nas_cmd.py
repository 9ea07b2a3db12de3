"""``ddfad-apps nas``: rank the ConvNet search space with cheap proxies and check the ranking (DDFAD Sec. 5.2).

For each ``--proxy`` the architectures (whole space, a stratified ``--sample`` or an Optuna budget) are trained
on the proxy by ``--workers`` processes joined through ``--storage``; the same architectures' whole-data
accuracy (the ground truth, a study of its own that every proxy and later run reuses) is computed the same
way; the rank correlations, picks and times are printed and logged to MLflow with a scatter plot.  Running
the same command with the same ``--storage`` on another machine joins the studies as more workers; with
``--join`` it only works on them (no report, no MLflow run: the run that started the job writes those).

A storage URL's password is never written or shown (report, job files, MLflow, console): only its redacted form
(:func:`ddfad_apps.tracking.redact.redact_url`); the workers get the real URL in their environment.  A worker
that dies is a warning when the others complete the study, an error only when architectures are left without
a result.
"""

from __future__ import annotations

from pathlib import Path

import click

from ddfad_apps.cli.data_options import duration_option, feature_option
from ddfad_apps.cli.job_runner import run_job
from ddfad_apps.data.registry import DATASETS
from ddfad_apps.nas.anytime import STRATEGIES
from ddfad_apps.nas.proxies import PROXY_NAMES


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
              type=click.Choice(PROXY_NAMES),
              help="Proxy to evaluate (repeat for several; they share one ground truth).")
@click.option("--strategy", "strategies", multiple=True, type=click.Choice(STRATEGIES),
              help="Anytime comparison instead of the proxy report (repeat): proxy-grid / proxy-tpe on each --proxy, "
                   "hyperband = Optuna TPE + Hyperband on the whole data; same CPU budget, ground truth of the pick "
                   "against CPU seconds (anytime.json, anytime.png; logged to MLflow).")
@click.option("--budget-seconds", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              help="With --strategy: CPU seconds (process time) each strategy may spend per seed.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="With --strategy: search seeds per strategy.")
@click.option("--target", type=click.FloatRange(0, 1, min_open=True), default=0.99, show_default=True,
              help="With --strategy: report the time to reach this fraction of the best candidate's ground truth.")
@click.option("--dataset", default="fsdd", show_default=True, metavar="NAME|DIR",
              help=f"Data set name ({', '.join(sorted(DATASETS))}) or a folder with one sub-folder per class.")
@feature_option()
@duration_option
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
@click.option("--join", is_flag=True,
              help="Only add --workers to the same job running elsewhere (same --out or --storage); "
                   "that run writes the report.")
@click.option("--cpc", type=click.IntRange(min=1), default=None, help="Clips per class of the small proxies (default 20).")
@click.option("--method", default=None, help="Distillation method of the distilled proxy (default mtt).")
@click.option("--preset", type=click.Choice(["fast", "paper"]), default=None, help="Distillation preset (default fast).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs on the proxy set.")
@click.option("--es-epochs", type=click.IntRange(min=1), default=None, help="Epochs of the early-stopping proxy (default 10, the paper's rule; early-stopping-short: 1).")
@click.option("--truth-epochs", type=click.IntRange(min=1), default=None, help="Whole-data epochs of the ground truth (default 15).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample, the proxy sets and the weights.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Folder holding the data sets.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (every worker uses it).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Torch threads per worker.")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI).")
@click.option("--experiment", default="ddfad-nas", show_default=True, help="MLflow experiment name.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("nas-out"),
              show_default=True, help="Folder for the journal, job files, worker logs, report and plot.")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
def nas(proxies: tuple[str, ...], restrict: tuple[str, ...], out_dir: Path, no_progress: bool,
        strategies: tuple[str, ...], budget_seconds: float, seeds: int, target: float, join: bool,
        **options) -> None:
    """Neural-architecture search on proxies; reports how well each proxy's ranking matches whole-data training."""
    from ddfad_apps.jobs.nas import (
        NASAnytimeJob,
        NASSearchJob,
        join_nas_job,
        run_nas_anytime_job,
        run_nas_job,
    )

    if strategies:
        ignored = [k for k in ("sampler", "n_trials", "storage", "es_epochs") if options.get(k) not in (None, "grid")]
        if ignored or options["workers"] != 1 or join:
            dropped = ", ".join(ignored) or ("--join" if join else "--workers")
            raise click.UsageError(f"--strategy runs in one process: drop {dropped}")
        kept = {k: options[k] for k in ("dataset", "space", "sample", "cpc", "method", "preset", "epochs",
                                        "truth_epochs", "seed", "data_root", "device", "threads", "feature", "duration",
                                        "tracking_uri", "experiment")}
        job = NASAnytimeJob(strategies=strategies, proxies=proxies, restriction=_restriction(restrict),
                            budget_seconds=budget_seconds, seeds=seeds, target=target, out=out_dir, **kept)
        done = run_job(run_nas_anytime_job, job, progress=not no_progress, say=click.echo)
        click.echo(done.text)
        click.echo(f"anytime.json, anytime.png in {done.out}")
        return
    job = NASSearchJob(proxies=proxies, restriction=_restriction(restrict), out=out_dir, **options)
    if join:
        truths = run_job(join_nas_job, job, progress=not no_progress, say=click.echo)
        click.echo(f"joined: every study of the job is complete ({truths} ground truths); its report is written "
                   "by the run that started it")
        return
    result = run_job(run_nas_job, job, progress=not no_progress, say=click.echo)
    click.echo(result.text)
    click.echo(f"report, scatter plot and trials in {result.out} ({result.seconds:.0f}s)")
