"""``ddfad-apps distill``, ``evaluate`` and ``reconstruct``: option parsing for the jobs in
:mod:`ddfad_apps.jobs.distill`, :mod:`~ddfad_apps.jobs.evaluate` and :mod:`~ddfad_apps.jobs.reconstruct`."""

from __future__ import annotations

from pathlib import Path

import click

from ddfad_apps.cli.data_options import (data_options, duration_option, feature_option, float_list,
                                         group_pattern_option, protocol_options, run_folder_options)
from ddfad_apps.cli.job_runner import echo_for, run_job
from ddfad_apps.distill.mtt import MTT_INITS
from ddfad_apps.distill.presets import METHODS, PRESETS
from ddfad_apps.models.registry import MODEL_NAMES


@click.command()
@data_options()
@group_pattern_option
@click.option("--method", type=click.Choice(METHODS), default="mtt", show_default=True, help="Distillation method.")
@click.option("--cpc", type=click.IntRange(min=1), default=10, show_default=True, help="Clips per class.")
@click.option("--model", type=click.Choice(MODEL_NAMES), default="convnet", show_default=True,
              help="Network the method distils with (MTT: experts and student).")
@click.option("--preset", type=click.Choice(PRESETS), default="fast", show_default=True,
              help="fast: minutes on a 2-core CPU; paper: the papers' settings, for a GPU.")
@feature_option()
@duration_option
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Override the preset's iterations.")
@click.option("--backprop-steps", type=click.IntRange(min=1), default=None, metavar="W",
              help="MTT: back-propagate through the last W student steps only (about 2x the iterations per second "
                   "at W=4 of 12; docs/distillation.md).  Default: the preset's (fast: 4; paper: all, exact); "
                   "W = the preset's student steps (fast: 12, or 20 at CPC 1) gives exact gradients.")
@click.option("--init", type=click.Choice(MTT_INITS), default=None,
              help="MTT: where the clips start: random or herding real clips, or dm (the fast DM set of the same data "
                   "and seed).  Default: the preset's (fast: herding; paper: random).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder (default runs/distill/<dataset>-<method>-cpc<N>-<model>-<preset>-s<seed>).")
@click.option("--force", is_flag=True,
              help="Replace an --out folder that holds a different run (only folders ddfad-apps made).")
@click.option("--eval-seeds", type=click.IntRange(min=0), default=1, show_default=True,
              help="Networks trained on the result and tested (0: skip evaluation).")
@click.option("--eval-epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of each evaluation network (default: the preset's, 300 for fast).")
@protocol_options
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Share of each class carved off the training split (before distilling) to "
                                      "choose the evaluation learning rate on.")
@click.option("--carve-seed", type=int, default=0, show_default=True, help="Seed of that carve.")
@click.option("--audio/--no-audio", default=True, show_default=True,
              help="Reconstruct the set as WAV clips and draw original vs distilled.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (default: MLflow's).")
@click.option("--experiment", default="ddfad-distill", show_default=True, help="MLflow experiment name.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def distill(no_progress: bool, **options) -> None:
    """Distil a data set's features into CPC clips per class; evaluate, reconstruct audio, log to MLflow."""
    from ddfad_apps.jobs.distill import DistillJob, run_distill_job

    job = DistillJob(**options)
    result = run_job(run_distill_job, job, progress=not no_progress, say=echo_for(not no_progress))
    if result.evaluation:
        r = result.evaluation[job.model]
        lr = f" at lr {r['lr']:g} ({r['lr_source']})" if "lr_source" in r else ""
        click.echo(f"test accuracy ({job.model}, {job.eval_seeds} seed(s)): {100 * r['mean']:.2f} +- "
                   f"{100 * r['std']:.2f} %{lr}")
    click.echo(f"distilled set: {result.out}")


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "models", default="convnet", show_default=True,
              help=f"Comma-separated networks to train on the set: {', '.join(MODEL_NAMES)} (cross-architecture).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (default: the preset's).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="ConvNet width (default: the preset's).")
@click.option("--waveform-noise", default=None, metavar="STD,STD,...", callback=float_list,
              help="Noise robustness as in the paper: Gaussian noise of each standard deviation (full scale) added to "
                   "the set's reconstructed waveforms, features re-extracted; reports variance and SNR per level.")
@click.option("--n-iter", type=click.IntRange(min=1), default=32, show_default=True,
              help="Griffin-Lim iterations of the --waveform-noise reconstruction.")
@click.option("--noise-std", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Feature-space variant: Gaussian noise (normalised feature units) added to the set before "
                   "training.")
@click.option("--round-trip", "--roundtrip", "roundtrip", is_flag=True,
              help="Also train on features extracted from the reconstructed WAV files (run `reconstruct` first), "
                   "through the same protocol and seeds.")
@protocol_options
@feature_option(None)
@duration_option
@run_folder_options
@click.option("--device", default="auto", show_default=True)
@click.option("--tracking-uri", default=None, metavar="URI")
@click.option("--experiment", default="ddfad-evaluate", show_default=True)
@click.option("--no-progress", is_flag=True)
def evaluate(models: str, no_progress: bool, **options) -> None:
    """Train fresh networks on the distilled set in FOLDER and report real test accuracy (mean +- std)."""
    from ddfad_apps.jobs.evaluate import EvaluateJob, run_evaluate_job

    options["waveform_noise"] = options["waveform_noise"] or ()
    job = EvaluateJob(models=tuple(models.split(",")), **options)
    result = run_job(run_evaluate_job, job, progress=not no_progress, say=echo_for(not no_progress))
    click.echo(result.table)


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--n-iter", type=click.IntRange(min=1), default=32, show_default=True, help="Griffin-Lim iterations.")
@run_folder_options
@click.option("--device", default="auto", show_default=True)
def reconstruct(**options) -> None:
    """Turn the distilled set in FOLDER into WAV clips (FOLDER/audio) and draw original vs distilled."""
    from ddfad_apps.jobs.reconstruct import ReconstructJob, run_reconstruct_job

    result = run_job(run_reconstruct_job, ReconstructJob(**options))
    exported = result.export
    click.echo(f"wrote {result.num_clips} clips to {exported.audio_dir} and {exported.figure}; listen: "
               f"{exported.page}")
    if result.run_id:
        click.echo(f"logged to MLflow run {result.run_id}")
