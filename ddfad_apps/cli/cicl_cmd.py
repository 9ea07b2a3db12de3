"""``ddfad-apps cicl``: class-incremental learning with EEIL, comparing replay memories (Table IV).

Every memory kind (distilled, herding, random) runs under the same EEIL recipe for each seed; each finished
(memory, seed) is saved as JSON in ``--out`` and skipped by a later run with the same settings, so an
interrupted comparison resumes where it stopped.  The summary table, the accuracy curves (PNG) and every run's
Avalanche metrics go to MLflow too (one parent run, one nested run per memory and seed).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from ddfad_apps.data.registry import DATASETS

MEMORY_CHOICES = ("distilled", "herding", "random")


def _memories(value: str) -> list[str]:
    kinds = [v.strip().lower() for v in value.split(",") if v.strip()]
    bad = [k for k in kinds if k not in MEMORY_CHOICES]
    if bad or not kinds:
        raise click.BadParameter(f"unknown memory {', '.join(bad) or '(none)'}; use a comma list of "
                                 f"{', '.join(MEMORY_CHOICES)}", param_hint="--memory")
    return list(dict.fromkeys(kinds))


def _result_path(out: Path, memory: str, seed: int) -> Path:
    return out / memory / f"seed{seed}.json"


def _load_done(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result at ``path`` if it was made with ``settings``; an error if made with others."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a torn file (should not happen: files are written atomically): redo the run
    if saved.get("settings") != settings:
        raise click.ClickException(
            f"{path} holds a result made with other settings; use another --out folder or delete it to rerun"
        )
    return saved


def _save(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)


@click.command()
@click.option("--dataset", required=True, metavar="NAME|DIR",
              help=f"Data set name ({', '.join(sorted(DATASETS))}) or a folder with one sub-folder per class.")
@click.option("--memory", "memory_list", default="distilled,herding,random", show_default=True,
              help="Comma-separated replay memories to compare: distilled, herding, random.")
@click.option("--model", "model_name", type=click.Choice(["convnet", "resnet18", "vgg11"], case_sensitive=False),
              default="convnet", show_default=True, help="Network (also the distillation network).")
@click.option("--mem-per-class", type=click.IntRange(min=1), default=20, show_default=True,
              help="Memory inputs kept per class.")
@click.option("--mem-size", type=click.IntRange(min=1), default=None,
              help="Total replay budget (default: mem-per-class x classes); must fit every class.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Seeds 0..N-1 per memory.")
@click.option("--experiences", type=click.IntRange(min=1), default=None,
              help="Experiences the classes are split into (default: 2 classes per experience).")
@click.option("--preset", type=click.Choice(["fast", "paper"]), default="fast", show_default=True,
              help="fast: width-32 ConvNet, 6+6 epochs, DM-distilled memory (CPU); paper: width 128, 40+30 epochs, MTT.")
@click.option("--distill-method", type=click.Choice(["mtt", "dc", "dsa", "dm", "random", "herding", "kcenter"]),
              default=None, help="Engine method making the distilled memory (default: preset; fast dm, paper mtt).")
@click.option("--distill-iterations", type=click.IntRange(min=1), default=None,
              help="Distillation iterations (default: the preset's).")
@click.option("--distill-init", type=click.Choice(["random", "herding"]), default=None,
              help="Real clips the distilled memory starts from (default: herding for the fast preset, random for paper).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs per experience (default: preset).")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=None,
              help="Balanced fine-tuning epochs (default: preset; 0 disables).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding the data sets (default: $DDFAD_DATA, else the ddfad-apps cache).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db).")
@click.option("--experiment", default="ddfad-cicl", show_default=True, help="MLflow experiment name.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("cicl-results"),
              show_default=True, help="Folder for per-run JSON (resume), the table and the curves PNG.")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
def cicl(
    dataset: str, memory_list: str, model_name: str, mem_per_class: int, mem_size: int | None, seeds: int,
    experiences: int | None, preset: str, distill_method: str | None, distill_iterations: int | None,
    distill_init: str | None, epochs: int | None, finetune_epochs: int | None, data_root: Path | None, device: str,
    tracking_uri: str | None, experiment: str, out: Path, no_progress: bool,
) -> None:
    """Class-incremental learning with EEIL: compare replay memories and print a Table IV-style summary."""
    from tqdm.auto import tqdm

    from ddfad_apps.continual.benchmarks import check_experiences, load_splits
    from ddfad_apps.continual.figures import accuracy_curves_figure, summary, summary_table
    from ddfad_apps.continual.runner import CICLConfig, run_cicl
    from ddfad_apps.data import AudioReadError
    from ddfad_apps.distill import NotEnoughClipsError, check_clips_per_class
    from ddfad_apps.training import NonFiniteLossError, resolve_device

    memories = _memories(memory_list)
    progress = not no_progress
    try:
        dev = resolve_device(device)
    except RuntimeError as exc:
        raise click.UsageError(str(exc)) from exc
    changes: dict[str, Any] = {"model": model_name.lower(), "mem_per_class": mem_per_class}
    if distill_method is not None:
        changes["distill_method"] = distill_method
    if model_name.lower() != "convnet":
        changes["model_kwargs"] = {"width": 16 if preset == "fast" else 64}
    if epochs is not None:
        changes["epochs"] = epochs
    if finetune_epochs is not None:
        changes["finetune_epochs"] = finetune_epochs
    overrides: dict[str, Any] = {}
    if distill_iterations is not None:
        overrides["iterations"] = distill_iterations
    if overrides:
        changes["distill_overrides"] = overrides
    if distill_init is not None:
        changes["distill_init"] = distill_init
    cfg = CICLConfig.preset(preset, **changes)

    started = time.perf_counter()
    try:
        splits = load_splits(dataset, data_root, progress=progress)
    except (OSError, ValueError, AudioReadError) as exc:
        raise click.ClickException(str(exc)) from exc
    train = splits.train
    n_classes = train.num_classes
    n_exp = experiences or max(1, n_classes // 2)
    budget = mem_size or mem_per_class * n_classes
    try:
        check_experiences(n_classes, n_exp)
        if budget < mem_per_class * n_classes:
            raise ValueError(f"memory budget of {budget} is too small for {mem_per_class} inputs per class x "
                             f"{n_classes} classes; use --mem-size >= {mem_per_class * n_classes} or a smaller "
                             "--mem-per-class")
        check_clips_per_class(train, mem_per_class)
    except (ValueError, NotEnoughClipsError) as exc:
        raise click.ClickException(str(exc)) from exc

    short = dataset.lower() if dataset.lower() in DATASETS else Path(dataset).name
    out_dir = out / short
    settings = {"dataset": short, "experiences": n_exp, "preset": preset, "config": cfg.as_dict(),
                "num_train": len(train), "num_test": len(splits.test)}
    click.echo(f"{short}: {len(train)} train / {len(splits.test)} test clips, {n_classes} classes in {n_exp} "
               f"experiences; memories {', '.join(memories)}, {mem_per_class} per class, {seeds} seed(s), "
               f"preset {preset} ({model_name} {cfg.model_kwargs}, {cfg.epochs}+{cfg.finetune_epochs} epochs, "
               f"distilled by {cfg.distill_method}) on {dev}; results in {out_dir}")

    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run
    from strategies import MLflowLogger

    say = tqdm.write if progress else click.echo  # tqdm.write keeps the progress bar below the lines
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in memories}
    jobs = [(m, s) for m in memories for s in range(seeds)]
    try:
        with tracking_run(experiment, f"cicl-{short}", {**settings, "memories": ",".join(memories), "seeds": seeds,
                                                      "device": str(dev)},
                          tracking_uri, tags={"command": "cicl"}) as parent:
            bar = tqdm(jobs, desc="cicl", disable=not progress)
            for memory, seed in bar:
                bar.set_postfix(memory=memory, seed=seed)
                path = _result_path(out_dir, memory, seed)
                done = _load_done(path, settings)
                if done is not None:
                    say(f"{memory} seed {seed}: skipped, done before (final accuracy "
                        f"{done['final_accuracy']:.4f}, {path})")
                    results[memory].append(done)
                    continue
                with tracking_run(experiment, f"{short}-{memory}-seed{seed}",
                                  {**settings, "memory": memory, "seed": seed}, tracking_uri,
                                  tags={"command": "cicl"}, nested=True) as child:
                    try:
                        result = run_cicl(splits, memory, seed, cfg, n_exp, dev, MLflowLogger(child), progress)
                    except (ValueError, NonFiniteLossError) as exc:
                        raise click.ClickException(f"{memory} seed {seed}: {exc}") from exc
                    result["settings"] = settings
                    for t, acc in enumerate(result["accuracy_curve"]):
                        child.metric("seen_class_accuracy", acc, step=t + 1)
                    child.metrics({"final_accuracy": result["final_accuracy"], "forgetting": result["forgetting"],
                                   "average_incremental_accuracy": result["average_incremental_accuracy"],
                                   "seconds": result["seconds"]})
                    child.dict(result, "result.json")
                _save(path, result)
                results[memory].append(result)
                line = (f"{memory} seed {seed}: final accuracy {result['final_accuracy']:.4f}, forgetting "
                        f"{result['forgetting']:.4f}, curve {[round(a, 3) for a in result['accuracy_curve']]}, "
                        f"{result['seconds']:.0f}s")
                say(line)
            bar.close()

            title = f"{short}: EEIL, {mem_per_class} per class, {n_exp} experiences ({preset})"
            table = summary_table(results, title)
            fig = accuracy_curves_figure(results, title)
            out_dir.mkdir(parents=True, exist_ok=True)
            fig.savefig(out_dir / "accuracy_curves.png")
            (out_dir / "table.txt").write_text(table + "\n")
            parent.figure(fig, "accuracy_curves.png")
            parent.text(table, "table.txt")
            parent.dict({"summary": summary(results), "runs": results}, "results.json")
            parent.metrics({f"{m}.{k}": v for m, row in summary(results).items() for k, v in row.items()})
            run_id, used_uri = parent.run_id, parent.tracking_uri
    except MlflowException as exc:
        raise click.ClickException(f"MLflow: {exc}") from exc

    click.echo(table)
    click.echo(f"curves: {out_dir / 'accuracy_curves.png'}; {time.perf_counter() - started:.0f}s; "
               f"MLflow run {run_id} in {used_uri}")
