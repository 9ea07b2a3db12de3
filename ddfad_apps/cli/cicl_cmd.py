"""``ddfad-apps cicl``: option parsing for :func:`ddfad_apps.jobs.cicl.run_cicl_job` (Table IV)."""

from __future__ import annotations

from pathlib import Path

import click

from ddfad_apps.cli.data_options import duration_option, feature_option
from ddfad_apps.cli.job_runner import echo_for, run_job
from ddfad_apps.data.registry import DATASETS
from ddfad_apps.distill.coreset import MEMORY_INITS
from ddfad_apps.distill.presets import METHODS
from ddfad_apps.distill.range_guard import STEP_RULES
from ddfad_apps.models.registry import MODEL_NAMES


@click.command()
@click.option("--dataset", required=True, metavar="NAME|DIR",
              help=f"Data set name ({', '.join(sorted(DATASETS))}) or a folder with one sub-folder per class.")
@click.option("--memory", "memory_list", default="distilled,herding,random", show_default=True,
              help="Comma-separated replay memories to compare: distilled, herding, random.")
@click.option("--model", "model_list", default="convnet", show_default=True, metavar="LIST",
              help=f"Comma-separated networks ({', '.join(MODEL_NAMES)}), each also its memory's distillation "
                   "network; several give one Table IV per network.")
@click.option("--mem-per-class", "per_class_list", default=None, metavar="LIST",
              help="Memory inputs kept per class, or a comma list (a sweep: one comparison per value, plus a "
                   "figure of final accuracy vs memory size). Default: 20, or with --mem-size a quota of "
                   "mem-size // seen classes shrinking as classes arrive.")
@click.option("--mem-size", type=click.IntRange(min=1), default=None,
              help="Total replay budget (default: mem-per-class x classes); must fit every class.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Seeds per memory: first-seed .. first-seed + N - 1.")
@click.option("--first-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="First seed (a fresh block of seeds, e.g. 10 with --seeds 10 for seeds 10-19).")
@click.option("--experiences", type=click.IntRange(min=1), default=None,
              help="Experiences the classes are split into (default: 2 classes per experience).")
@click.option("--preset", type=click.Choice(["fast", "paper"]), default="fast", show_default=True,
              help="fast: width-32 ConvNet, 6+6 epochs, DM-distilled memory (CPU); paper: width 128, 40+30 epochs, MTT.")
@click.option("--distill-method", type=click.Choice(METHODS), default=None,
              help="Engine method making the distilled memory (default: preset; fast dm, paper mtt).")
@click.option("--distill-iterations", type=click.IntRange(min=1), default=None,
              help="Distillation iterations (default: the preset's).")
@click.option("--distill-set", default=None, metavar="FIELD:VALUE,...",
              help="Any other setting of the memory's distillation method (e.g. lr_img:0.1 for DM, syn_steps:20 "
                   "for MTT); an unknown field is refused before anything trains.")
@click.option("--distill-steps", type=click.Choice(STEP_RULES), default=None,
              help="How the memory's distillation (DM, MTT) moves its clips: scale_free (steps in the inputs' "
                   "spread, whatever the network; the default) or absolute (the paper's SGD steps, set on ConvNet).")
@click.option("--distill-init", type=click.Choice(MEMORY_INITS), default=None,
              help="Real clips the distilled memory starts from: random, herding (in the raw inputs) or "
                   "model-herding (EEIL's exemplars: herding in the network just trained). Default: herding for "
                   "the fast preset, random for paper.")
@click.option("--distill-context/--no-distill-context", default=None,
              help="Distil each new class together with the memory's other classes (their kept clips repeated "
                   "as replay balances them), keeping only the new classes' clips (default: preset).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs per experience (default: preset).")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=None,
              help="Balanced fine-tuning epochs (default: preset; 0 disables).")
@click.option("--finetune-min-steps", type=click.IntRange(min=0), default=None,
              help="Balanced fine-tuning runs more epochs when its epochs take fewer optimizer steps than this "
                   "(a small memory is one batch an epoch; default: preset).")
@click.option("--augment/--no-augment", default=None,
              help="Augment training and fine-tuning batches (time shift, time and frequency masks), as EEIL "
                   "trains with augmentation (default: preset, on).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding the data sets (default: $DDFAD_DATA, else the ddfad-apps cache).")
@feature_option()
@duration_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db).")
@click.option("--experiment", default="ddfad-cicl", show_default=True, help="MLflow experiment name.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("cicl-results"),
              show_default=True, help="Folder for per-run JSON (resume), the table and the curves PNG.")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
def cicl(memory_list: str, model_list: str, per_class_list: str | None, no_progress: bool, **options) -> None:
    """Class-incremental learning with EEIL: compare replay memories and print a Table IV-style summary."""
    from ddfad_apps.jobs.cicl import CICLJob, run_cicl_job

    per_class = None
    if per_class_list is not None:
        try:
            per_class = tuple(int(v) for v in per_class_list.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected integers separated by commas, got {per_class_list!r}",
                                     param_hint="--mem-per-class") from None
    job = CICLJob(memories=tuple(memory_list.split(",")), models=tuple(model_list.split(",")),
                  mem_per_class=per_class, **options)
    result = run_job(run_cicl_job, job, progress=not no_progress, say=echo_for(not no_progress))
    click.echo(result.table)
    sweep = result.out_dir / "memory_sweep.png"
    click.echo(f"results: {result.out_dir} (sweep.json{', memory_sweep.png' if sweep.exists() else ''}, "
               f"accuracy_curves.png per comparison); {result.seconds:.0f}s; MLflow run {result.run_id} in "
               f"{result.tracking_uri}")
