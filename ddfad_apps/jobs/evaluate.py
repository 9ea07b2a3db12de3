"""The evaluation job: train fresh networks on a distilled set and report their real test accuracy.

``run_evaluate_job(EvaluateJob("runs/distill/fsdd-mtt-cpc10-convnet-fast-s0", models=("convnet", "vgg11")))``
is what ``ddfad-apps evaluate`` runs: cross-architecture (several ``models``), noise robustness (``noise_std``)
and, with ``roundtrip``, the same networks trained on FD-MFCC extracted back from the set's reconstructed audio.
The set is first checked against the data it is tested on (classes, features, normalisation).  Results go to one
MLflow run (``test_accuracy_<model>[_roundtrip]`` and ``evaluation.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddfad_apps.jobs.data import Say, load_splits, open_device
from ddfad_apps.jobs.distill import log_accuracies, open_run_folder
from ddfad_apps.jobs.errors import JobError, JobSettingsError

if TYPE_CHECKING:
    from ddfad_apps.features import FeatureSet, FeatureSplits

ROUNDTRIP = "audio roundtrip"


@dataclass
class EvaluateJob:
    """Which run folder, which networks and how they train (``None``: the folder's preset recipe)."""

    folder: Path
    models: tuple[str, ...] = ("convnet",)
    seeds: int = 3
    epochs: int | None = None
    width: int | None = None
    noise_std: float = 0.0
    roundtrip: bool = False
    dataset: str | None = None
    data_root: Path | None = None
    device: str = "auto"
    tracking_uri: str | None = None
    experiment: str = "ddfad-evaluate"

    def model_names(self) -> list[str]:
        """The networks to train, each one the model registry knows."""
        from ddfad_apps.models.registry import MODEL_NAMES

        names = [m.strip().lower() for m in self.models if m.strip()]
        bad = [m for m in names if m not in MODEL_NAMES]
        if bad or not names:
            raise JobSettingsError(f"unknown model(s) {bad}; choose from {', '.join(MODEL_NAMES)}")
        return names


@dataclass
class EvaluateJobResult:
    """Per evaluated set (``features``, and ``audio roundtrip`` when asked) per model: mean, std, the accuracy of
    every seed and the recipe; and where the MLflow run went."""

    report: dict[str, dict[str, dict[str, Any]]]
    run_id: str
    tracking_uri: str

    @property
    def table(self) -> str:
        """One line per (set, model): accuracy in percent, mean +- std over the seeds."""
        lines = [f"{'set':<16} {'model':<10} accuracy (%)"]
        for kind, res in self.report.items():
            lines += [f"{kind:<16} {m:<10} {100 * r['mean']:.2f} +- {100 * r['std']:.2f}" for m, r in res.items()]
        return "\n".join(lines)


def run_evaluate_job(job: EvaluateJob, progress: bool = True, say: Say = print) -> EvaluateJobResult:
    """Train ``job.seeds`` networks of each of ``job.models`` on the set in ``job.folder``; test, report, log."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.distill.compat import IncompatibleSetError, check_compatible
    from ddfad_apps.distill.evaluate import FIXED_LR_PROTOCOL, evaluate_models
    from ddfad_apps.tracking import tracking_run

    names = job.model_names()
    run = open_run_folder(job.folder, job.dataset, job.data_root)
    syn, ref = run.synthetic, run.dataset
    dev = open_device(job.device)
    splits = load_splits(ref, job.data_root, progress, **run.options)
    try:
        check_compatible(syn, splits.test, splits.stats, f"the distilled set in {job.folder}",
                         f"data set {ref.name!r} ({ref.argument})")
    except IncompatibleSetError as exc:
        raise JobError(str(exc)) from exc
    say(f"{len(syn)} {syn.method} clips from {job.folder}, tested on data set {ref.name!r} ({ref.argument}): "
        f"{len(splits.test)} test clips, {splits.test.num_classes} classes")
    sets: dict[str, Any] = {"features": syn}
    if job.roundtrip:
        sets[ROUNDTRIP] = roundtrip_set(Path(job.folder), splits)
    params = {"folder": str(job.folder), "models": names, "seeds": job.seeds, "epochs": job.epochs,
              "width": job.width, "noise_std": job.noise_std, "roundtrip": job.roundtrip, "request": run.request,
              "protocol": FIXED_LR_PROTOCOL}
    report: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with tracking_run(job.experiment, Path(job.folder).name, params, job.tracking_uri,
                          tags={"command": "evaluate"}) as logger:
            for kind, data in sets.items():
                say(f"{kind}:")
                report[kind] = evaluate_models(data, splits.test, names, job.seeds, run.request["preset"], dev,
                                               progress, job.noise_std, job.width, job.epochs, report=say)
                log_accuracies(logger, report[kind], "" if kind == "features" else "_roundtrip")
            logger.dict(report, "evaluation.json")
            run_id, used_uri = logger.run_id, logger.tracking_uri
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
    return EvaluateJobResult(report, run_id, used_uri)


def roundtrip_set(folder: Path, splits: FeatureSplits) -> FeatureSet:
    """FD-MFCC of the reconstructed WAVs in ``folder/audio``, normalised with the real training statistics and
    labelled as the set (what a network learns from the audio a listener hears)."""
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.features.dataset import FeatureSet, extract_clip_features
    from ddfad_apps.reconstruct.export import AUDIO_DIR

    audio = folder / AUDIO_DIR
    if not audio.exists():
        raise JobError(f"{audio} does not exist: run `ddfad-apps reconstruct {folder}` first")
    clips = list_clips(str(audio), "all", None)
    raw = extract_clip_features(clips, splits.config, use_cache=False, progress=False)
    index = [splits.classes.index(c) for c in clips.classes]
    labels = raw.labels.new_tensor(index)[raw.labels]
    return FeatureSet(splits.stats.apply(raw.features), labels, splits.classes, {"method": "roundtrip"})
