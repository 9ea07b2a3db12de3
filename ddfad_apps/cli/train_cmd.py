"""``ddfad-apps train``: train one network on a whole data set's features and log the run to MLflow.

This is the full-data baseline every distilled set is compared with, so it logs what a comparison needs:
all settings as params, per-epoch metrics, the model, a confusion matrix and training curves.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import click

from ddfad_apps.cli.data_options import check_features_or_fail, resolve_dataset_or_fail
from ddfad_apps.data.registry import DATASETS

# Settings per (data set, model) measured to reach the README's accuracies in under ~10 minutes on a 2-core CPU
# (ResNet18/VGG11 narrowed to fit); any option given on the command line wins.  Unlisted pairs use the
# TrainConfig and model defaults.  VGG11 uses batch norm: with instance norm its last blocks normalise 1x3
# maps over 3 values each, and it creeps to 97% on FSDD where batch norm gets 99% (see README).
DEFAULTS: dict[tuple[str, str], dict[str, float | int | str]] = {
    ("fsdd", "convnet"): {"epochs": 15, "lr": 0.01},
    ("fsdd", "resnet18"): {"epochs": 15, "lr": 0.01, "width": 16},
    ("fsdd", "vgg11"): {"epochs": 15, "lr": 0.01, "width": 32, "norm": "batchnorm"},
    ("ravdess", "convnet"): {"epochs": 12, "lr": 0.01},
    ("ravdess", "resnet18"): {"epochs": 12, "lr": 0.01, "width": 16},
    ("ravdess", "vgg11"): {"epochs": 12, "lr": 0.01, "width": 32, "norm": "batchnorm"},
}
MODEL_CHOICES = ("convnet", "resnet18", "vgg11")


def _defaults(dataset: str, model: str) -> dict[str, float | int | str]:
    return DEFAULTS.get((dataset.lower(), model), {})


def _describe(history_row: dict[str, float], epoch: int, epochs: int, seconds: float) -> str:
    parts = [f"epoch {epoch:>{len(str(epochs))}}/{epochs}", f"loss {history_row['train_loss']:.4f}",
             f"train {history_row['train_accuracy']:.4f}"]
    if "test_accuracy" in history_row:
        parts.append(f"test {history_row['test_accuracy']:.4f}")
    parts.append(f"{seconds:.1f}s")
    return "  ".join(parts)


@click.command()
@click.option("--dataset", required=True, metavar="NAME|DIR",
              help=f"Data set name ({', '.join(sorted(DATASETS))}) or a folder with one sub-folder per class.")
@click.option("--model", "model_name", type=click.Choice(MODEL_CHOICES, case_sensitive=False), default="convnet",
              show_default=True, help="Architecture.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding the data sets (default: $DDFAD_DATA, else the ddfad-apps cache).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: per data set and model).")
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Learning rate (default 0.01).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Mini-batch size (default 64).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default=None, help="Optimiser (default sgd, momentum 0.9).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights and batch order.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Channels (ConvNet) or first-stage channels (ResNet18/VGG11).")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="ConvNet blocks (default 3); ConvNet only.")
@click.option("--norm", type=click.Choice(["none", "batchnorm", "layernorm", "instancenorm", "groupnorm"]), default=None,
              help="Normalisation layers (default: instancenorm, as in the distillation literature).")
@click.option("--split-mode", type=click.Choice(["actor", "stratified"]), default=None,
              help="RAVDESS only: actor-independent (default; actors 21-24 test) or stratified random split.")
@click.option("--duration", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Seconds every clip is padded/cropped to (default: per data set, FSDD 1.0, RAVDESS 3.0).")
@click.option("--feature", type=click.Choice(["fd_mfcc", "mfcc", "lpcc"]), default="fd_mfcc", show_default=True,
              help="Feature kind: MFCC + deltas as 3 channels, MFCC only, or LPCC.")
@click.option("--frame-ms", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Frame length in ms (default 20).")
@click.option("--hop-ms", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Hop in ms (default 20).")
@click.option("--n-mfcc", type=click.IntRange(min=1), default=None, help="Cepstral coefficients (default 20).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db).")
@click.option("--experiment", default="ddfad-train", show_default=True, help="MLflow experiment name.")
@click.option("--run-name", default=None, help="MLflow run name (default: <dataset>[-<split mode>]-<model>).")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="Unreadable clip: stop, or leave it out with a warning.")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
def train(
    dataset: str, model_name: str, data_root: Path | None, epochs: int | None, lr: float | None,
    batch_size: int | None, optimizer: str | None, seed: int, device: str, width: int | None, depth: int | None,
    norm: str | None,
    split_mode: str | None, duration: float | None, feature: str, frame_ms: float | None, hop_ms: float | None,
    n_mfcc: int | None, tracking_uri: str | None, experiment: str, run_name: str | None, on_error: str,
    no_progress: bool,
) -> None:
    """Train a network on a data set's FD-MFCC features, report test accuracy and log the run to MLflow."""
    # MLflow, features and models load here, not at module level: `ddfad-apps --help` imports this module.
    from ddfad_apps.data import AudioReadError
    from ddfad_apps.features import FeatureConfig, load_features
    from ddfad_apps.models import build_model
    from ddfad_apps.training import NonFiniteLossError, TrainConfig, resolve_device, seed_everything

    model_name = model_name.lower()
    progress = not no_progress
    ref = resolve_dataset_or_fail(dataset, data_root)
    is_ravdess = ref.name == "ravdess" and ref.folder is None
    if split_mode is not None and not is_ravdess:
        raise click.UsageError("--split-mode applies to --dataset ravdess only")
    if depth is not None and model_name != "convnet":
        raise click.UsageError("--depth applies to --model convnet only")

    preset = _defaults(ref.argument, model_name)
    base = TrainConfig()
    cfg = TrainConfig(
        epochs=epochs or int(preset.get("epochs", base.epochs)),
        lr=lr or float(preset.get("lr", base.lr)),
        batch_size=batch_size or int(preset.get("batch_size", base.batch_size)),
        optimizer=optimizer or str(preset.get("optimizer", base.optimizer)),
    )
    model_kwargs: dict[str, int | str] = {}
    if width or "width" in preset:
        model_kwargs["width"] = int(width or preset["width"])
    if depth:
        model_kwargs["depth"] = depth
    if norm or "norm" in preset:
        model_kwargs["norm"] = str(norm or preset["norm"])

    try:
        dev = resolve_device(device)
        feature_changes = {k: v for k, v in {"kind": feature, "frame_ms": frame_ms, "hop_ms": hop_ms,
                                             "n_coeffs": n_mfcc}.items() if v is not None}
        features_cfg = FeatureConfig().replace(**feature_changes)
    except (RuntimeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc

    options = {"split_mode": split_mode} if split_mode else {}
    started = time.perf_counter()
    try:
        splits = load_features(ref.argument, data_root, features_cfg, duration=duration, on_error=on_error,
                               progress=progress, **options)
    except (OSError, ValueError, AudioReadError) as exc:
        # DatasetNotFoundError, EmptyClassError, AudioReadError and bad folders: their messages name the problem.
        raise click.ClickException(str(exc)) from exc
    load_s = time.perf_counter() - started
    check_features_or_fail(splits)
    train_set, test_set = splits.train, splits.test
    if len(test_set) == 0:
        raise click.ClickException(f"data set {dataset!r} has no test clips; a test split is needed to report accuracy")
    gen = seed_everything(seed)  # right before the weights are drawn, so data loading cannot shift them
    try:
        model = build_model(model_name, train_set.num_classes, train_set.input_shape, **model_kwargs)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"cannot build {model_name} for input {train_set.input_shape}: {exc}") from exc

    n_params = sum(p.numel() for p in model.parameters())
    click.echo(
        f"{dataset}: {len(train_set)} train / {len(test_set)} test clips, {train_set.num_classes} classes, "
        f"input {tuple(train_set.input_shape)} (features {load_s:.1f}s); {model_name}{''.join(f' {k}={v}' for k, v in model_kwargs.items())} "
        f"{n_params / 1e6:.2f}M params on {dev}; {cfg.epochs} epochs {cfg.optimizer} lr {cfg.lr} batch {cfg.batch_size}"
    )

    params = {
        "dataset": ref.record(), "model": {"name": model_name, **model_kwargs, "num_params": n_params},
        "train": asdict(cfg), "features": features_cfg.as_dict(), "seed": seed, "device": str(dev),
        "data": {"num_train": len(train_set), "num_test": len(test_set), "num_classes": train_set.num_classes,
                 "input_shape": list(train_set.input_shape), "sample_rate": train_set.meta.get("sample_rate"),
                 "duration": train_set.meta.get("duration"), "split_mode": split_mode, "on_error": on_error,
                 "data_root": data_root},
    }

    from mlflow.exceptions import MlflowException
    from tqdm.auto import tqdm

    from ddfad_apps.tracking import confusion_matrix_figure, tracking_run, training_curves_figure
    from ddfad_apps.training import predict, train_model

    short = ref.name
    name = run_name or "-".join(filter(None, (short, split_mode, model_name)))
    try:
        with tracking_run(experiment, name, params, tracking_uri, tags={"command": "train"}) as run:
            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                now = time.perf_counter()
                line = _describe(metrics, epoch + 1, cfg.epochs, now - epoch_started[0])
                if progress:
                    tqdm.write(line)  # keeps the progress bar intact below the line
                else:
                    click.echo(line)
                run.metrics({**metrics, "epoch_seconds": now - epoch_started[0]}, step=epoch + 1)
                epoch_started[0] = now

            train_started = time.perf_counter()
            epoch_started = [train_started]
            try:
                result = train_model(model, train_set, cfg, test_set, device=dev, generator=gen,
                                     progress=progress, desc=model_name, on_epoch=on_epoch)
            except NonFiniteLossError as exc:
                raise click.ClickException(str(exc)) from exc
            train_s = time.perf_counter() - train_started

            y_pred = predict(model, test_set.features)
            test_acc = float((y_pred == test_set.labels).float().mean())
            run.metrics({"final_test_accuracy": test_acc, "train_seconds": train_s, "feature_seconds": load_s})
            run.figure(confusion_matrix_figure(test_set.labels.numpy(), y_pred.numpy(), test_set.classes,
                                               f"{name} test"), "confusion_matrix.png")
            run.figure(training_curves_figure(result.history, name), "training_curves.png")
            run.dict({"classes": test_set.classes, "feature_config": features_cfg.as_dict(),
                      "feature_stats": splits.stats.state_dict(), "history": result.history}, "training.json")
            run.model(model, "model", architecture=model_name, model_kwargs=model_kwargs)
            run_id, used_uri = run.run_id, run.tracking_uri
    except MlflowException as exc:
        raise click.ClickException(f"MLflow: {exc}") from exc

    correct = int((y_pred == test_set.labels).sum())
    click.echo(f"test accuracy {test_acc:.4f} ({correct}/{len(test_set)}) after {cfg.epochs} epochs in "
               f"{train_s:.0f}s; MLflow run {run_id} in {used_uri}")
