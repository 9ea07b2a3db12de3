"""``ddfad-apps train``: option parsing for :func:`ddfad_apps.jobs.train.run_train_job`, the whole-data baseline
(train one network on a data set's features, test it, log the run to MLflow), and with ``--under-protocol`` for
:func:`~ddfad_apps.jobs.train.run_whole_data_protocol_job` (the whole training split evaluated as every set is)."""

from __future__ import annotations

import click

from ddfad_apps.cli.data_options import (data_options, duration_option, feature_option, float_list,
                                         group_pattern_option)
from ddfad_apps.cli.job_runner import echo_for, run_job
from ddfad_apps.models.layers import NORMS
from ddfad_apps.models.registry import MODEL_NAMES


@click.command()
@data_options(required=True)
@group_pattern_option
@click.option("--model", type=click.Choice(MODEL_NAMES, case_sensitive=False), default="convnet",
              show_default=True, help="Architecture.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: per data set and model).")
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Learning rate (default 0.01).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Mini-batch size (default 64).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default=None, help="Optimiser (default sgd, momentum 0.9).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights and batch order.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Channels (ConvNet) or first-stage channels (ResNet18/VGG11).")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="ConvNet blocks (default 3); ConvNet only.")
@click.option("--norm", type=click.Choice(NORMS), default=None,
              help="Normalisation layers (default: instancenorm, as in the distillation literature).")
@duration_option
@feature_option()
@click.option("--frame-ms", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Frame length in ms (default 20).")
@click.option("--hop-ms", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Hop in ms (default 20).")
@click.option("--n-mfcc", type=click.IntRange(min=1), default=None, help="Cepstral coefficients (default 20).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db).")
@click.option("--experiment", default="ddfad-train", show_default=True, help="MLflow experiment name.")
@click.option("--run-name", default=None, help="MLflow run name (default: <dataset>[-<split mode>]-<model>).")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="Unreadable clip: stop, or leave it out with a warning.")
@click.option("--under-protocol", is_flag=True,
              help="Evaluate the whole training split as every distilled or coreset set is: carve the validation "
                   "part, choose the rate on it from the grid, test --seeds networks of the protocol's recipe.")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="--under-protocol: evaluation networks (default 2).")
@click.option("--lr-grid", default=None, metavar="LR,LR,...", callback=float_list,
              help="--under-protocol: rates the protocol chooses from (default 0.003,0.01,0.03).")
@click.option("--select-epochs", type=click.IntRange(min=1), default=None,
              help="--under-protocol: epochs of the rate-selection networks (default: the evaluation's; the "
                   "report uses 100).")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
def train(no_progress: bool, **options) -> None:
    """Train a network on a data set's FD-MFCC features, report test accuracy and log the run to MLflow."""
    from ddfad_apps.jobs.train import TrainJob, run_train_job, run_whole_data_protocol_job

    say = echo_for(not no_progress)
    if options["under_protocol"]:
        w = run_job(run_whole_data_protocol_job, TrainJob(**options), progress=not no_progress, say=say)
        click.echo(f"whole training split ({w.num_fit} clips) under the protocol: {w.evaluation}; MLflow run "
                   f"{w.run_id} in {w.tracking_uri}")
        return
    r = run_job(run_train_job, TrainJob(**options), progress=not no_progress, say=say)
    click.echo(f"test accuracy {r.test_accuracy:.4f} ({r.correct}/{r.num_test}) after {r.epochs} epochs in "
               f"{r.train_seconds:.0f}s; MLflow run {r.run_id} in {r.tracking_uri}")
