"""The whole-data baseline job: train one network on a data set's features, test it, log the run to MLflow.

``run_train_job(TrainJob(dataset="fsdd", model="convnet"))`` is what ``ddfad-apps train`` runs.  It is the
baseline every distilled set is compared with, so it logs what a comparison needs: all settings as params,
per-epoch metrics, the model (safetensors + JSON), a confusion matrix and training curves.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddfad_apps.jobs.data import Say, feature_config, load_splits, open_dataset, open_device
from ddfad_apps.jobs.distill import carve_training, check_protocol_settings, evaluate_with_protocol, make_protocol
from ddfad_apps.jobs.errors import JobError, JobSettingsError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ddfad_apps.evidence import EvalProtocol, SetEvaluation
    from ddfad_apps.evidence.protocol import Carved
    from ddfad_apps.features import FeatureConfig, FeatureSet, FeatureSplits
    from ddfad_apps.tracking import RunLogger
    from ddfad_apps.training import TrainConfig

# Settings per (data set, model) measured to reach the README's accuracies in under ~10 minutes on a 2-core CPU
# (ResNet18/VGG11 narrowed to fit); any setting given explicitly wins.  Unlisted pairs (folder data sets
# included) use the TrainConfig and model defaults.  VGG11 uses batch norm: with instance norm its last blocks
# normalise 1x3 maps over 3 values each, and it creeps to 97% on FSDD where batch norm gets 99% (see README).
TRAIN_DEFAULTS: dict[tuple[str, str], dict[str, float | int | str]] = {
    ("fsdd", "convnet"): {"epochs": 15, "lr": 0.01},
    ("fsdd", "resnet18"): {"epochs": 15, "lr": 0.01, "width": 16},
    ("fsdd", "vgg11"): {"epochs": 15, "lr": 0.01, "width": 32, "norm": "batchnorm"},
    ("ravdess", "convnet"): {"epochs": 12, "lr": 0.01},
    ("ravdess", "resnet18"): {"epochs": 12, "lr": 0.01, "width": 16},
    ("ravdess", "vgg11"): {"epochs": 12, "lr": 0.01, "width": 32, "norm": "batchnorm"},
}


@dataclass
class TrainJob:
    """What to train on what: ``None`` takes the :data:`TRAIN_DEFAULTS` of the (data set, model) pair, else the
    :class:`~ddfad_apps.training.TrainConfig`, model and :class:`~ddfad_apps.features.FeatureConfig` defaults."""

    dataset: str
    model: str = "convnet"
    data_root: Path | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    seed: int = 0
    device: str = "auto"
    width: int | None = None
    depth: int | None = None
    norm: str | None = None
    split_mode: str | None = None
    group_pattern: str | None = None
    duration: float | None = None
    feature: str = "fd_mfcc"
    frame_ms: float | None = None
    hop_ms: float | None = None
    n_mfcc: int | None = None
    tracking_uri: str | None = None
    experiment: str = "ddfad-train"
    run_name: str | None = None
    on_error: str = "raise"
    # The whole training split under the evaluation protocol (see :func:`run_whole_data_protocol_job`).
    under_protocol: bool = False
    seeds: int | None = None
    lr_grid: tuple[float, ...] | None = None
    select_epochs: int | None = None

    def check(self) -> None:
        """Refuse settings that cannot be honoured (before any data is read)."""
        from ddfad_apps.models.registry import MODEL_NAMES

        if self.model.lower() not in MODEL_NAMES:
            raise JobSettingsError(f"unknown model {self.model!r}; choose from {', '.join(MODEL_NAMES)}")
        if self.depth is not None and self.model.lower() != "convnet":
            raise JobSettingsError("--depth applies to --model convnet only")
        if self.under_protocol:
            set_by_protocol = [f"--{name.replace('_', '-')}" for name in ("lr", "batch_size", "optimizer", "depth",
                                                                           "norm") if getattr(self, name) is not None]
            if set_by_protocol:
                raise JobSettingsError(f"{', '.join(set_by_protocol)}: the evaluation protocol sets these under "
                                       "--under-protocol (it chooses the rate on the carved validation part)")
            check_protocol_settings("lr-grid", self.lr_grid, 0.1)
        else:
            alone = [f"--{name.replace('_', '-')}" for name in ("seeds", "lr_grid", "select_epochs")
                     if getattr(self, name) is not None]
            if alone:
                raise JobSettingsError(f"{', '.join(alone)} apply to --under-protocol only")

    def defaults(self, dataset: str) -> dict[str, float | int | str]:
        """The measured defaults for this model on ``dataset`` (a registered name; folders have none)."""
        return TRAIN_DEFAULTS.get((dataset.lower(), self.model.lower()), {})

    def train_config(self, dataset: str) -> TrainConfig:
        """The training recipe: explicit settings, else the pair's defaults, else :class:`TrainConfig`'s."""
        from ddfad_apps.training import TrainConfig

        preset, base = self.defaults(dataset), TrainConfig()
        return TrainConfig(
            epochs=self.epochs or int(preset.get("epochs", base.epochs)),
            lr=self.lr or float(preset.get("lr", base.lr)),
            batch_size=self.batch_size or int(preset.get("batch_size", base.batch_size)),
            optimizer=self.optimizer or str(preset.get("optimizer", base.optimizer)),
        )

    def model_kwargs(self, dataset: str) -> dict[str, int | str]:
        """The network's constructor settings: explicit width/depth/norm, else the pair's defaults."""
        preset = self.defaults(dataset)
        kwargs: dict[str, int | str] = {}
        if self.width or "width" in preset:
            kwargs["width"] = int(self.width or preset["width"])
        if self.depth:
            kwargs["depth"] = self.depth
        if self.norm or "norm" in preset:
            kwargs["norm"] = str(self.norm or preset["norm"])
        return kwargs

    def feature_config(self) -> FeatureConfig:
        """The feature settings (kind, framing, coefficients); impossible ones are a :class:`JobSettingsError`."""
        return feature_config(self.feature, self.frame_ms, self.hop_ms, self.n_mfcc)


@dataclass
class TrainJobResult:
    """The trained network, its test accuracy (also logged as ``final_test_accuracy``) and where the run went."""

    model: nn.Module
    test_accuracy: float
    correct: int
    num_test: int
    epochs: int
    history: list[dict[str, float]]
    train_seconds: float
    run_id: str
    tracking_uri: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def describe_epoch(row: dict[str, float], epoch: int, epochs: int, seconds: float) -> str:
    """One line per epoch: loss, train (and test) accuracy, seconds."""
    parts = [f"epoch {epoch:>{len(str(epochs))}}/{epochs}", f"loss {row['train_loss']:.4f}",
             f"train {row['train_accuracy']:.4f}"]
    if "test_accuracy" in row:
        parts.append(f"test {row['test_accuracy']:.4f}")
    parts.append(f"{seconds:.1f}s")
    return "  ".join(parts)


def run_train_job(job: TrainJob, progress: bool = True, say: Say = print) -> TrainJobResult:
    """Train ``job.model`` on ``job.dataset``'s training split, test it and log everything to one MLflow run."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.models import build_model
    from ddfad_apps.tracking import tracking_run
    from ddfad_apps.training import seed_everything

    job.check()
    if job.under_protocol:
        raise JobSettingsError("under_protocol: run it with run_whole_data_protocol_job (it returns an evaluation, "
                               "not one trained network)")
    model_name = job.model.lower()
    ref, options = open_dataset(job.dataset, job.data_root, job.split_mode, job.group_pattern)
    cfg, model_kwargs = job.train_config(ref.argument), job.model_kwargs(ref.argument)
    features_cfg = job.feature_config()
    dev = open_device(job.device)
    started = time.perf_counter()
    splits = load_splits(ref, job.data_root, progress, config=features_cfg, duration=job.duration,
                         on_error=job.on_error, **options)
    load_s = time.perf_counter() - started
    train_set, test_set = splits.train, splits.test
    if len(test_set) == 0:
        raise JobError(f"data set {job.dataset!r} has no test clips; a test split is needed to report accuracy")
    gen = seed_everything(job.seed)  # right before the weights are drawn, so data loading cannot shift them
    try:
        model = build_model(model_name, train_set.num_classes, train_set.input_shape, **model_kwargs)
    except (ValueError, TypeError) as exc:
        raise JobError(f"cannot build {model_name} for input {train_set.input_shape}: {exc}") from exc

    n_params = sum(p.numel() for p in model.parameters())
    say(f"{job.dataset}: {len(train_set)} train / {len(test_set)} test clips, {train_set.num_classes} classes, "
        f"input {tuple(train_set.input_shape)} (features {load_s:.1f}s); "
        f"{model_name}{''.join(f' {k}={v}' for k, v in model_kwargs.items())} {n_params / 1e6:.2f}M params on "
        f"{dev}; {cfg.epochs} epochs {cfg.optimizer} lr {cfg.lr} batch {cfg.batch_size}")
    params = {
        "dataset": ref.record(), "model": {"name": model_name, **model_kwargs, "num_params": n_params},
        "train": asdict(cfg), "features": features_cfg.as_dict(), "seed": job.seed, "device": str(dev),
        "data": {"num_train": len(train_set), "num_test": len(test_set), "num_classes": train_set.num_classes,
                 "input_shape": list(train_set.input_shape), "sample_rate": train_set.meta.get("sample_rate"),
                 "duration": train_set.meta.get("duration"), "split_mode": job.split_mode,
                 "on_error": job.on_error, "data_root": job.data_root},
    }
    name = job.run_name or "-".join(filter(None, (ref.name, job.split_mode, model_name)))
    try:
        with tracking_run(job.experiment, name, params, job.tracking_uri, tags={"command": "train"}) as run:
            history, acc, correct, train_s = _train_and_log(run, model, model_name, splits, cfg, dev, gen, name,
                                                            progress, say)
            run.metric("feature_seconds", load_s)
            run.model(model, "model", architecture=model_name, model_kwargs=model_kwargs)
            run_id, used_uri = run.run_id, run.tracking_uri
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
    return TrainJobResult(model, acc, correct, len(test_set), cfg.epochs, history, train_s, run_id, used_uri,
                          model_kwargs)


def _train_and_log(run: RunLogger, model: nn.Module, model_name: str, splits: FeatureSplits, cfg: TrainConfig,
                   dev: torch.device, gen: torch.Generator, name: str, progress: bool,
                   say: Say) -> tuple[list[dict[str, float]], float, int, float]:
    """Train with one line and one MLflow step per epoch, test, and log the accuracy, figures and history;
    returns the history, the test accuracy, the number of correct test clips and the training seconds."""
    from ddfad_apps.tracking import confusion_matrix_figure, training_curves_figure
    from ddfad_apps.training import NonFiniteLossError, predict, train_model

    train_set, test_set = splits.train, splits.test
    epoch_started = [time.perf_counter()]

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        now = time.perf_counter()
        say(describe_epoch(metrics, epoch + 1, cfg.epochs, now - epoch_started[0]))
        run.metrics({**metrics, "epoch_seconds": now - epoch_started[0]}, step=epoch + 1)
        epoch_started[0] = now

    train_started = epoch_started[0]
    try:
        trained = train_model(model, train_set, cfg, test_set, device=dev, generator=gen, progress=progress,
                              desc=model_name, on_epoch=on_epoch)
    except NonFiniteLossError as exc:
        raise JobError(str(exc)) from exc
    train_s = time.perf_counter() - train_started
    y_pred = predict(model, test_set.features)
    test_acc = float((y_pred == test_set.labels).float().mean())
    run.metrics({"final_test_accuracy": test_acc, "train_seconds": train_s})
    run.figure(confusion_matrix_figure(test_set.labels.numpy(), y_pred.numpy(), test_set.classes, f"{name} test"),
               "confusion_matrix.png")
    run.figure(training_curves_figure(trained.history, name), "training_curves.png")
    run.dict({"classes": test_set.classes, "feature_config": splits.config.as_dict(),
              "feature_stats": splits.stats.state_dict(), "history": trained.history}, "training.json")
    return trained.history, test_acc, int((y_pred == test_set.labels).sum()), train_s


# Evaluation networks the whole training split is tested with when --seeds is not given (as every set of the report).
WHOLE_DATA_SEEDS = 2


@dataclass
class WholeDataEvaluation:
    """The whole training split (its carved fit part) through the evaluation protocol, and where the run went."""

    evaluation: SetEvaluation
    num_fit: int
    run_id: str
    tracking_uri: str


def evaluate_whole_split(carved: Carved, test: FeatureSet, protocol: EvalProtocol, seeds: int | list[int],
                         dev: torch.device, progress: bool = False, say: Say = print) -> SetEvaluation:
    """The carved fit part of the training split evaluated as one more set (named ``whole``): the step the
    ``train --under-protocol`` job and the report's whole-split cells share."""
    whole = replace(carved.fit, meta={**carved.fit.meta, "method": "whole"})
    return evaluate_with_protocol(whole, carved, test, protocol, seeds, dev, progress, say)


def run_whole_data_protocol_job(job: TrainJob, progress: bool = True, say: Say = print) -> WholeDataEvaluation:
    """The whole-data reference row of a comparison, made the way every distilled or coreset set is evaluated.

    Why: a whole-data figure from the ``train`` recipe (one network, its own epochs and rate) is not comparable
    with sets evaluated under the protocol.  Here the training split is carved exactly as the sets' sources are
    (same validation fraction and carve seed), the rate is chosen on the validation part from the same grid, and
    ``seeds`` networks of the protocol's recipe train on the fit part and are tested.
    """
    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run

    job = replace(job, under_protocol=True)
    job.check()
    ref, options = open_dataset(job.dataset, job.data_root, job.split_mode, job.group_pattern)
    features_cfg = job.feature_config()
    protocol = make_protocol("fast", job.model.lower(), job.width, job.epochs, job.lr_grid, 0.1, 0)
    if job.select_epochs is not None:
        protocol = protocol.with_changes(select_epochs=job.select_epochs)
    dev = open_device(job.device)
    splits = load_splits(ref, job.data_root, progress, config=features_cfg, duration=job.duration,
                         on_error=job.on_error, **options)
    if len(splits.test) == 0:
        raise JobError(f"data set {job.dataset!r} has no test clips; a test split is needed to report accuracy")
    carved = carve_training(protocol, splits.train)
    seeds = job.seeds or WHOLE_DATA_SEEDS
    say(f"{job.dataset}: the whole training split under the evaluation protocol: {len(carved.fit)} fit / "
        f"{len(carved.val)} validation / {len(splits.test)} test clips; {protocol.model} {protocol.model_kwargs}, "
        f"lr from {list(protocol.lr_grid)} at {protocol.select_epochs or protocol.epochs} epochs, then {seeds} "
        f"networks x {protocol.epochs} epochs on {dev}")
    params = {"dataset": ref.record(), "set": {"kind": "whole", "clips": len(carved.fit)},
              "protocol": protocol.as_dict(), "carve": carved.as_dict(), "features": features_cfg.as_dict(),
              "seeds": seeds, "device": str(dev)}
    name = job.run_name or "-".join(filter(None, (ref.name, job.split_mode, job.model.lower(), "whole-protocol")))
    try:
        with tracking_run(job.experiment, name, params, job.tracking_uri,
                          tags={"command": "train", "set": "whole"}) as run:
            ev = evaluate_whole_split(carved, splits.test, protocol, seeds, dev, progress, say)
            run.metrics({"test_accuracy": ev.summary.mean, "test_accuracy_std": ev.summary.std, "lr": ev.lr})
            run.dict(ev.as_dict(), "evaluation.json")
            run_id, used_uri = run.run_id, run.tracking_uri
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
    return WholeDataEvaluation(ev, len(carved.fit), run_id, used_uri)
