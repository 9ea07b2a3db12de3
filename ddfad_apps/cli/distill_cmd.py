"""``ddfad-apps distill``, ``evaluate`` and ``reconstruct``: the distillation engine from the command line.

``distill`` writes a run folder (see :mod:`ddfad_apps.distill.run_folder`): ``run.json`` (the request),
``checkpoint.pt`` while MTT runs (an interrupted run resumes from it), ``distilled.safetensors`` +
``distilled.json`` (the set, written last), ``losses.png``, ``evaluation.json``, ``audio/`` (one WAV per clip
and a manifest the folder loader reads) and ``original_vs_distilled.png``.  Everything is also logged to MLflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ddfad_apps.cli.data_options import (
    check_data_root, check_features_or_fail, data_options, dataset_options, load_splits_or_fail,
    resolve_dataset_or_fail,
)
from ddfad_apps.distill.presets import METHODS, PRESETS

MODEL_CHOICES = ("convnet", "resnet18", "vgg11")
EVAL_FILE = "evaluation.json"


def _progress_echo(progress: bool):
    from tqdm.auto import tqdm

    return tqdm.write if progress else click.echo


def _loss_figure(history: list[dict[str, float]], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([h["iteration"] for h in history], [h["loss"] for h in history], lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("matching loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _evaluate_models(syn, test, models: list[str], seeds: int, preset: str, device, progress: bool,
                     noise_std: float = 0.0, width: int | None = None, epochs: int | None = None) -> dict[str, Any]:
    from ddfad_apps.distill.evaluate import evaluate_models

    return evaluate_models(syn, test, models, seeds, preset, device, progress, noise_std, width, epochs,
                           report=_progress_echo(progress))


@click.command()
@data_options
@click.option("--method", type=click.Choice(METHODS), default="mtt", show_default=True, help="Distillation method.")
@click.option("--cpc", type=click.IntRange(min=1), default=10, show_default=True, help="Clips per class.")
@click.option("--model", "model_name", type=click.Choice(MODEL_CHOICES), default="convnet", show_default=True,
              help="Network the method distils with (MTT: experts and student).")
@click.option("--preset", type=click.Choice(PRESETS), default="fast", show_default=True,
              help="fast: minutes on a 2-core CPU; paper: the papers' settings, for a GPU.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Override the preset's iterations.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder (default runs/distill/<dataset>-<method>-cpc<N>-<model>-<preset>-s<seed>).")
@click.option("--force", is_flag=True,
              help="Replace an --out folder that holds a different run (only folders ddfad-apps made).")
@click.option("--eval-seeds", type=click.IntRange(min=0), default=1, show_default=True,
              help="Networks trained on the result and tested (0: skip evaluation).")
@click.option("--eval-epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of each evaluation network (default: the preset's, 300 for fast).")
@click.option("--audio/--no-audio", default=True, show_default=True,
              help="Reconstruct the set as WAV clips and draw original vs distilled.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--tracking-uri", default=None, metavar="URI", help="MLflow tracking URI (default: MLflow's).")
@click.option("--experiment", default="ddfad-distill", show_default=True, help="MLflow experiment name.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def distill(dataset: str, data_root: Path | None, split_mode: str | None, method: str, cpc: int, model_name: str,
            preset: str, iterations: int | None, seed: int, out: Path | None, force: bool, eval_seeds: int,
            eval_epochs: int | None, audio: bool, device: str, tracking_uri: str | None, experiment: str, no_progress: bool) -> None:
    """Distil a data set's FD-MFCC into CPC clips per class; evaluate, reconstruct audio, log to MLflow."""
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.distill import NotEnoughClipsError, SyntheticSet, check_clips_per_class
    from ddfad_apps.distill import distill as run_distill
    from ddfad_apps.distill.compat import IncompatibleSetError, NonFiniteInputError, check_compatible
    from ddfad_apps.distill.presets import CORESET_METHODS, method_settings
    from ddfad_apps.distill.run_folder import CHECKPOINT_FILE, ForeignRunError, prepare_run_folder
    from ddfad_apps.distill.synthetic_set import InvalidSetError
    from ddfad_apps.training import NonFiniteLossError, resolve_device

    progress = not no_progress
    echo = _progress_echo(progress)
    options = dataset_options(dataset, split_mode)
    if iterations is not None and method in CORESET_METHODS:
        raise click.UsageError(f"--iterations does not apply to --method {method}: a coreset method selects "
                               "clips in one pass")
    if eval_epochs is not None and not eval_seeds:
        raise click.UsageError("--eval-epochs has no effect with --eval-seeds 0 (no evaluation)")
    ref = resolve_dataset_or_fail(dataset, data_root)
    dev = resolve_device(device)
    splits = load_splits_or_fail(ref.argument, data_root, progress, **options)
    check_features_or_fail(splits)
    short = ref.name
    out = out or Path("runs") / "distill" / f"{short}-{method}-cpc{cpc}-{model_name}-{preset}-s{seed}"
    overrides = {"iterations": iterations} if iterations else {}
    settings = method_settings(method, preset, cpc, len(splits.train), **overrides)
    try:
        check_clips_per_class(splits.train, cpc)
    except NotEnoughClipsError as exc:
        raise click.ClickException(str(exc)) from exc
    request = {"dataset": ref.record(), "options": options, "method": method, "cpc": cpc, "model": model_name,
               "preset": preset, "seed": seed, "settings": settings, "features": splits.config.as_dict()}
    try:
        state = prepare_run_folder(out, request, force)
    except ForeignRunError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{short}: {len(splits.train)} train / {len(splits.test)} test clips, {splits.train.num_classes} "
               f"classes, input {tuple(splits.train.input_shape)}; {method} cpc {cpc} ({preset}) on {dev} -> {out}"
               + {"resume": " (resuming)", "complete": " (already distilled; evaluating again)"}.get(state, ""))

    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run

    params = {"dataset": ref.record(), **options, "method": method, "cpc": cpc, "model": model_name,
              "preset": preset, "seed": seed, "device": str(dev), "out": str(out), "settings": settings,
              "features": splits.config.as_dict()}
    try:
        with tracking_run(experiment, out.name, params, tracking_uri, tags={"command": "distill"}) as run:
            started = time.perf_counter()
            steps: list[dict[str, float]] = []
            if state == "complete":
                try:
                    syn = SyntheticSet.load(out)
                    check_compatible(syn, splits.train, splits.stats, f"the distilled set in {out}",
                                     f"data set {short!r} ({ref.argument})")
                except (InvalidSetError, IncompatibleSetError) as exc:
                    raise click.ClickException(f"{exc}; pass --force to distil it again") from exc
            else:
                def on_step(rec: dict[str, float]) -> None:
                    steps.append({"iteration": int(rec["iteration"]), "loss": float(rec["loss"])})
                    run.metrics({k: v for k, v in rec.items() if k != "iteration"}, step=int(rec["iteration"]))

                try:
                    syn = run_distill(splits.train, cpc, method, preset, settings=settings, model=model_name,
                                      device=dev, seed=seed, test=splits.test, stats=splits.stats,
                                      checkpoint=out / CHECKPOINT_FILE, progress=progress, on_step=on_step)
                except (NotEnoughClipsError, NonFiniteInputError) as exc:
                    raise click.ClickException(str(exc)) from exc
                except NonFiniteLossError as exc:
                    kept = out / CHECKPOINT_FILE
                    note = f"; the last good checkpoint is kept in {kept}" if kept.exists() else ""
                    raise click.ClickException(f"{exc}{note}") from exc
                syn.meta["options"] = options
                syn.save(out)
                (out / CHECKPOINT_FILE).unlink(missing_ok=True)
            distill_s = time.perf_counter() - started
            run.metric("distill_seconds", distill_s)
            echo(f"distilled {len(syn)} clips in {distill_s:.1f}s"
                 + (f", learned lr {syn.lr:.4g}" if syn.lr is not None else ""))
            losses = _history(syn, out, steps)
            if losses:
                fig = _loss_figure(losses, f"{method} {short} cpc {cpc}")
                fig.savefig(out / "losses.png", dpi=120)
                run.figure(fig, "losses.png")
            if eval_seeds:
                results = _evaluate_models(syn, splits.test, [model_name], eval_seeds, preset, dev, progress,
                                           epochs=eval_epochs)
                (out / EVAL_FILE).write_text(json.dumps(results, indent=2))
                run.metrics({f"test_accuracy_{m}": r["mean"] for m, r in results.items()})
                run.metrics({f"test_accuracy_std_{m}": r["std"] for m, r in results.items()})
            if audio:
                from ddfad_apps.reconstruct.export import export_audio

                clips = list_clips(ref.argument, "train", data_root, **options)
                exported = export_audio(syn, clips, out)
                run.artifact(exported.audio_dir, "audio")
                run.artifact(exported.figure)
            for name in ("run.json", "distilled.json", "distilled.safetensors", EVAL_FILE):
                if (out / name).exists():
                    run.artifact(out / name, "distilled")
    except MlflowException as exc:
        raise click.ClickException(f"MLflow: {exc}") from exc
    if eval_seeds:
        r = results[model_name]
        click.echo(f"test accuracy ({model_name}, {eval_seeds} seed(s)): {100 * r['mean']:.2f} +- "
                   f"{100 * r['std']:.2f} %")
    click.echo(f"distilled set: {out}")


def _history(syn, out: Path, steps: list[dict[str, float]]) -> list[dict[str, float]]:
    """Loss per iteration, kept beside the set so a re-evaluated run can still draw it.

    MTT's set carries its whole loss history (a resumed run included); other methods' come from ``steps``.
    """
    path = out / "losses.json"
    if path.exists():
        return json.loads(path.read_text())
    losses = [{"iteration": i + 1, "loss": v} for i, v in enumerate(syn.meta.get("losses", []))] or steps
    if losses:
        path.write_text(json.dumps(losses))
    return losses


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "models", default="convnet", show_default=True,
              help="Comma-separated networks to train on the set: convnet, resnet18, vgg11 (cross-architecture).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (default: the preset's).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="ConvNet width (default: the preset's).")
@click.option("--noise-std", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Gaussian noise (normalised feature units) added to the set before training: robustness test.")
@click.option("--roundtrip", is_flag=True,
              help="Also train on FD-MFCC extracted from the reconstructed audio (run `reconstruct` first).")
@click.option("--dataset", "dataset_override", default=None, metavar="NAME|DIR",
              help="Data set to test on instead of the one recorded in FOLDER/run.json (e.g. a folder that moved); "
                   "it must match the set (classes, features, normalisation).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--tracking-uri", default=None, metavar="URI")
@click.option("--experiment", default="ddfad-evaluate", show_default=True)
@click.option("--no-progress", is_flag=True)
def evaluate(folder: Path, models: str, seeds: int, epochs: int | None, width: int | None, noise_std: float,
             roundtrip: bool, dataset_override: str | None, data_root: Path | None, device: str,
             tracking_uri: str | None, experiment: str, no_progress: bool) -> None:
    """Train fresh networks on the distilled set in FOLDER and report real test accuracy (mean +- std)."""
    from ddfad_apps.distill.compat import IncompatibleSetError, check_compatible
    from ddfad_apps.tracking import tracking_run
    from ddfad_apps.training import resolve_device

    progress = not no_progress
    names = [m.strip().lower() for m in models.split(",") if m.strip()]
    bad = [m for m in names if m not in MODEL_CHOICES]
    if bad:
        raise click.UsageError(f"unknown model(s) {bad}; choose from {', '.join(MODEL_CHOICES)}")
    request, syn, ref, options = _load_run(folder, dataset_override, data_root)
    dev = resolve_device(device)
    splits = load_splits_or_fail(ref.argument, data_root, progress, **options)
    check_features_or_fail(splits)
    try:
        check_compatible(syn, splits.test, splits.stats, f"the distilled set in {folder}",
                         f"data set {ref.name!r} ({ref.argument})")
    except IncompatibleSetError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(syn)} {syn.method} clips from {folder}, tested on data set {ref.name!r} ({ref.argument}): "
               f"{len(splits.test)} test clips, {splits.test.num_classes} classes")
    sets = {"features": syn}
    if roundtrip:
        sets["audio roundtrip"] = _roundtrip_set(folder, splits)
    params = {"folder": str(folder), "models": names, "seeds": seeds, "epochs": epochs, "width": width,
              "noise_std": noise_std, "roundtrip": roundtrip, "request": request}
    report: dict[str, Any] = {}
    with tracking_run(experiment, folder.name, params, tracking_uri, tags={"command": "evaluate"}) as run:
        for kind, data in sets.items():
            click.echo(f"{kind}:")
            res = _evaluate_models(data, splits.test, names, seeds, request["preset"], dev, progress, noise_std,
                                   width, epochs)
            report[kind] = res
            tag = "" if kind == "features" else "_roundtrip"
            run.metrics({f"test_accuracy_{m}{tag}": r["mean"] for m, r in res.items()})
            run.metrics({f"test_accuracy_std_{m}{tag}": r["std"] for m, r in res.items()})
        run.dict(report, "evaluation.json")
    click.echo(f"{'set':<16} {'model':<10} accuracy (%)")
    for kind, res in report.items():
        for m, r in res.items():
            click.echo(f"{kind:<16} {m:<10} {100 * r['mean']:.2f} +- {100 * r['std']:.2f}")


def _load_run(folder: Path, dataset_override: str | None, data_root: Path | None):
    """A run folder's request, its checked set, the data set it names (or ``dataset_override``) and that data
    set's options; every fault (missing or damaged files, a recorded folder that moved or changed) becomes a
    ClickException naming it."""
    from ddfad_apps.data.registry import dataset_from_record
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.distill.run_folder import RUN_FILE, read_request
    from ddfad_apps.distill.synthetic_set import InvalidSetError

    try:
        request = read_request(folder)
        syn = SyntheticSet.load(folder)
        ref = dataset_from_record(request.get("dataset"), dataset_override, str(folder / RUN_FILE))
    except (FileNotFoundError, InvalidSetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    check_data_root(ref, data_root)
    if request.get("preset") not in PRESETS:
        raise click.ClickException(f"{folder / RUN_FILE} records preset {request.get('preset')!r}; expected one "
                                   f"of {', '.join(PRESETS)}")
    options = request.get("options") or {}
    if options and ref.name != "ravdess":
        raise click.ClickException(f"{folder / RUN_FILE} records options {options} for data set "
                                   f"{request.get('dataset')!r}, which {ref.argument} does not take")
    return request, syn, ref, options


def _roundtrip_set(folder: Path, splits):
    """FD-MFCC of the reconstructed WAVs, normalised with the real training statistics, labelled as the set."""
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.features.dataset import FeatureSet, extract_clip_features
    from ddfad_apps.reconstruct.export import AUDIO_DIR

    audio = folder / AUDIO_DIR
    if not audio.exists():
        raise click.ClickException(f"{audio} does not exist: run `ddfad-apps reconstruct {folder}` first")
    clips = list_clips(str(audio), "all", None)
    raw = extract_clip_features(clips, splits.config, use_cache=False, progress=False)
    index = [splits.classes.index(c) for c in clips.classes]
    labels = raw.labels.new_tensor(index)[raw.labels]
    return FeatureSet(splits.stats.apply(raw.features), labels, splits.classes, {"method": "roundtrip"})


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--n-iter", type=click.IntRange(min=1), default=32, show_default=True, help="Griffin-Lim iterations.")
@click.option("--dataset", "dataset_override", default=None, metavar="NAME|DIR",
              help="Data set the set was distilled from, instead of the one recorded in FOLDER/run.json (e.g. a "
                   "folder that moved); it must match the set (classes, sample rate, clip length).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--device", default="auto", show_default=True)
def reconstruct(folder: Path, n_iter: int, dataset_override: str | None, data_root: Path | None,
                device: str) -> None:
    """Turn the distilled set in FOLDER into WAV clips (FOLDER/audio) and draw original vs distilled."""
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.distill.compat import check_compatible
    from ddfad_apps.reconstruct.export import export_audio, log_to_active_run
    from ddfad_apps.training import resolve_device

    _, syn, ref, options = _load_run(folder, dataset_override, data_root)
    try:
        clips = list_clips(ref.argument, "train", data_root, **options)
        check_compatible(syn, clips, None, f"the distilled set in {folder}", f"data set {ref.name!r} ({ref.argument})")
        exported = export_audio(syn, clips, folder, n_iter=n_iter, device=resolve_device(device))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {len(syn)} clips to {exported.audio_dir} and {exported.figure}; listen: {exported.page}")
    run_id = log_to_active_run(exported)  # MLflow: only into a run already active (MLFLOW_RUN_ID)
    if run_id:
        click.echo(f"logged to MLflow run {run_id}")
