"""The evaluation job: train fresh networks on a distilled set and report their real test accuracy.

``run_evaluate_job(EvaluateJob("runs/distill/fsdd-mtt-cpc10-convnet-fast-s0", models=("convnet", "vgg11")))``
is what ``ddfad-apps evaluate`` runs: cross-architecture (several ``models``), noise robustness (``waveform_noise``:
Gaussian noise on the set's reconstructed waveforms, the paper's Fig. 7; ``noise_std``: the older variant, noise on
the normalised features) and, with ``roundtrip``, the same networks trained on features extracted back from the
set's reconstructed WAV files.  Every set goes through the evaluation protocol (:mod:`ddfad_apps.evidence`): the
learning rate is chosen on the validation part carved before distilling (``run.json`` records it), then ``seeds``
networks are tested; ``eval_protocol="fixed-lr"`` is the older recipe.  The set is first checked against the data it
is tested on (classes, feature kind and settings, normalisation).  Results go to one MLflow run
(``test_accuracy_<model>[<tag>]`` and ``evaluation.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddfad_apps.jobs.data import Say, open_device
from ddfad_apps.jobs.distill import (check_protocol_settings, evaluate_with_protocol, invertible, log_accuracies,
                                     make_protocol, open_run_folder, protocol_errors)
from ddfad_apps.jobs.errors import JobError, JobSettingsError

if TYPE_CHECKING:
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.features import FeatureSet, FeatureSplits

ROUNDTRIP = "audio roundtrip"


def noise_kind(std: float) -> str:
    """The report key of one waveform-noise level."""
    return f"waveform noise {std:g}"


@dataclass
class EvaluateJob:
    """Which run folder, which networks and how they train (``None``: the folder's preset recipe and recorded
    feature settings; ``feature``/``duration`` name other ones, and a set that does not fit them is refused)."""

    folder: Path
    models: tuple[str, ...] = ("convnet",)
    seeds: int = 3
    epochs: int | None = None
    width: int | None = None
    noise_std: float = 0.0
    waveform_noise: tuple[float, ...] = ()
    n_iter: int = 32
    roundtrip: bool = False
    eval_protocol: str = "lr-grid"
    lr_grid: tuple[float, ...] | None = None
    extend_edges: int = 0
    feature: str | None = None
    duration: float | None = None
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

    def check(self) -> None:
        """Refuse settings that cannot be honoured together (before reading anything)."""
        from ddfad_apps.features.transforms import FEATURE_MODULES

        check_protocol_settings(self.eval_protocol, self.lr_grid, 0.5, self.extend_edges)
        if self.feature is not None and self.feature not in FEATURE_MODULES:
            raise JobSettingsError(f"unknown feature kind {self.feature!r}; choose from {', '.join(FEATURE_MODULES)}")
        bad = [s for s in self.waveform_noise if not (s >= 0 and math.isfinite(s))]
        if bad:
            raise JobSettingsError(f"--waveform-noise levels are standard deviations >= 0 (full scale), got {bad}")
        if self.waveform_noise and self.eval_protocol != "lr-grid":
            raise JobSettingsError("--waveform-noise evaluates with the lr-grid protocol only")


@dataclass
class EvaluateJobResult:
    """Per evaluated set (``features``; ``audio roundtrip`` and ``waveform noise <std>`` when asked) per model:
    mean, std, the accuracy of every seed, the chosen lr and the protocol; and where the MLflow run went."""

    report: dict[str, dict[str, dict[str, Any]]]
    run_id: str
    tracking_uri: str

    @property
    def table(self) -> str:
        """One line per (set, model): accuracy in percent, mean +- std over the seeds (and the noise's SNR)."""
        lines = [f"{'set':<22} {'model':<10} accuracy (%)"]
        for kind, res in self.report.items():
            for m, r in res.items():
                noise = r.get("noise")
                snr = "" if not noise else (f"  (variance {noise['variance']:.3g}, SNR "
                                            + ("inf" if noise["snr_db"] is None else f"{noise['snr_db']:.1f}")
                                            + " dB)")
                ci = "" if r.get("ci_low") is None else f" [{100 * r['ci_low']:.2f}, {100 * r['ci_high']:.2f}]"
                lines.append(f"{kind:<22} {m:<10} {100 * r['mean']:.2f} +- {100 * r['std']:.2f}{ci}{snr}")
        return "\n".join(lines)


def run_evaluate_job(job: EvaluateJob, progress: bool = True, say: Say = print) -> EvaluateJobResult:
    """Train ``job.seeds`` networks of each of ``job.models`` on the set in ``job.folder``; test, report, log."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.distill.compat import IncompatibleSetError, check_compatible
    from ddfad_apps.distill.evaluate import FIXED_LR_PROTOCOL
    from ddfad_apps.tracking import tracking_run

    names = job.model_names()
    job.check()
    run = open_run_folder(job.folder, job.dataset, job.data_root)
    syn, ref = run.synthetic, run.dataset
    if (job.waveform_noise or job.roundtrip) and not invertible(run.feature_config()):
        raise JobSettingsError(f"the set in {job.folder} is in {run.feature_config().kind} features, which cannot "
                               "be turned into audio: --waveform-noise and --roundtrip need MFCC-based features")
    dev = open_device(job.device)
    splits = run.load_splits(job.data_root, progress, job.feature, job.duration)
    try:
        check_compatible(syn, splits.test, splits.stats, f"the distilled set in {job.folder}",
                         f"data set {ref.name!r} ({ref.argument})")
    except IncompatibleSetError as exc:
        raise JobError(str(exc)) from exc
    protocols = {m: make_protocol(run.request["preset"], m, job.width, job.epochs, job.lr_grid, *run.carve_settings(),
                                  job.noise_std, job.extend_edges) for m in names}
    carved = run.carve(protocols[names[0]], splits.train) if job.eval_protocol == "lr-grid" else None
    say(f"{len(syn)} {syn.method} clips from {job.folder}, tested on data set {ref.name!r} ({ref.argument}): "
        f"{len(splits.test)} test clips, {splits.test.num_classes} classes"
        + (f"; lr chosen on {len(carved.val)} carved validation clips" if carved is not None else ""))
    audio = roundtrip_set(Path(job.folder), syn, splits) if job.roundtrip else None
    params = {"folder": str(job.folder), "models": names, "seeds": job.seeds, "epochs": job.epochs,
              "width": job.width, "noise_std": job.noise_std, "waveform_noise": list(job.waveform_noise),
              "roundtrip": job.roundtrip, "request": run.request, "features": splits.config.as_dict(),
              "protocol": ({m: p.as_dict() for m, p in protocols.items()} if carved is not None
                           else FIXED_LR_PROTOCOL),
              "carve": carved.as_dict() if carved is not None else None}
    report: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with tracking_run(job.experiment, Path(job.folder).name, params, job.tracking_uri,
                          tags={"command": "evaluate"}) as logger:
            if carved is None:
                _fixed_lr(job, run.request["preset"], names, syn, audio, splits.test, dev, progress, say, report)
            else:
                _with_protocol(job, names, protocols, syn, audio, carved, splits.test, dev, progress, say, report)
            for kind, res in report.items():
                log_accuracies(logger, res, _tag(kind))
            logger.dict(report, "evaluation.json")
            run_id, used_uri = logger.run_id, logger.tracking_uri
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
    return EvaluateJobResult(report, run_id, used_uri)


def _tag(kind: str) -> str:
    """The MLflow metric suffix of a report entry."""
    if kind == "features":
        return ""
    if kind == ROUNDTRIP:
        return "_roundtrip"
    return "_wnoise_" + kind.rsplit(" ", 1)[-1]


def _fixed_lr(job: EvaluateJob, preset: str, names: list[str], syn: Any, audio: Any, test: FeatureSet, dev: Any,
              progress: bool, say: Say, report: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The older recipe (learned lr, else 0.01) on the set and its round trip."""
    from ddfad_apps.distill.evaluate import evaluate_models

    for kind, data in (("features", syn), (ROUNDTRIP, audio)):
        if data is not None:
            say(f"{kind}:")
            report[kind] = evaluate_models(data, test, names, job.seeds, preset, dev, progress, job.noise_std,
                                           job.width, job.epochs, report=say)


def _with_protocol(job: EvaluateJob, names: list[str], protocols: dict[str, Any], syn: Any, audio: Any,
                   carved: Any, test: FeatureSet, dev: Any, progress: bool, say: Say,
                   report: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Every set (features, round trip, each waveform-noise level) through the protocol, per model, on the same
    evaluation seeds (so the round trip's loss is a paired difference)."""
    from ddfad_apps.evidence.noise import waveform_noise_curve
    from ddfad_apps.evidence.roundtrip import round_trip

    for m in names:
        proto = protocols[m]
        say(f"{m}:")
        features = evaluate_with_protocol(syn, carved, test, proto, job.seeds, dev, progress, say)
        report.setdefault("features", {})[m] = features.as_dict()
        if audio is not None:
            with protocol_errors():
                rt = round_trip(syn, audio, carved, test, proto, job.seeds, dev, features, progress)
            report.setdefault(ROUNDTRIP, {})[m] = {**rt.audio.as_dict(),
                                                   "audio_minus_features": rt.difference.as_dict()}
            say(f"  {rt.audio}")
        if job.waveform_noise:
            with protocol_errors():
                levels = waveform_noise_curve(syn, carved, test, proto, job.waveform_noise, job.seeds, dev,
                                              job.n_iter)
            for level in levels:
                noise = {k: v for k, v in level.as_dict().items() if k != "evaluation"}
                report.setdefault(noise_kind(level.std), {})[m] = {**level.evaluation.as_dict(), "noise": noise}
                say(f"  noise std {level.std:g} (variance {level.variance:.3g}, SNR {level.snr_db:.1f} dB): "
                    f"{level.evaluation}")


def roundtrip_set(folder: Path, syn: SyntheticSet, splits: FeatureSplits) -> SyntheticSet:
    """The set's features extracted again from its reconstructed WAVs in ``folder/audio`` and normalised with
    the real training statistics (what a network learns from the audio a listener hears)."""
    from ddfad_apps.evidence.roundtrip import audio_set
    from ddfad_apps.reconstruct.export import AUDIO_DIR

    audio = folder / AUDIO_DIR
    if not audio.exists():
        raise JobError(f"{audio} does not exist: run `ddfad-apps reconstruct {folder}` first")
    with protocol_errors():
        return audio_set(syn, audio, splits.stats)
