"""The distillation job: distil a data set into ``cpc`` clips per class, evaluate, reconstruct audio, log.

``run_distill_job(DistillJob(dataset="fsdd", method="mtt", cpc=10))`` is what ``ddfad-apps distill`` runs.  It
writes a run folder (see :mod:`ddfad_apps.distill.run_folder`): ``run.json`` (the request), ``checkpoint.pt``
while MTT runs (an interrupted run resumes from it), ``distilled.safetensors`` + ``distilled.json`` (the set,
written last), ``losses.json`` + ``losses.png``, ``evaluation.json``, ``audio/`` (one WAV per clip and a manifest
the folder loader reads) and ``original_vs_distilled.png``.  A folder already holding the same request's set is
complete: the set is checked against the data and evaluated again, never distilled again.  Everything is also
logged to MLflow.

The evaluation protocol (:mod:`ddfad_apps.evidence.protocol`) starts here: a validation part is carved from the
training split *before* distilling (recorded in ``run.json`` and ``carve.json``, and in MLflow), the set is made
from the rest only, and its networks train at the learning rate chosen on the validation part (``lr-grid``, the
default; ``fixed-lr`` is the older recipe: the learned rate, else 0.01).

:func:`open_run_folder` reads such a folder back for the ``evaluate`` and ``reconstruct`` jobs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddfad_apps.jobs.data import (Say, check_data_root, feature_config, load_splits, open_dataset, open_device,
                                  takes_split_mode)
from ddfad_apps.jobs.errors import JobError, JobSettingsError
from ddfad_apps.jobs.files import write_json_atomic

if TYPE_CHECKING:
    import torch

    from ddfad_apps.data.registry import DatasetRef
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.evidence.protocol import Carved, EvalProtocol, SetEvaluation
    from ddfad_apps.features import FeatureConfig, FeatureSet, FeatureSplits
    from ddfad_apps.reconstruct.export import AudioExport
    from ddfad_apps.tracking import RunLogger

EVAL_FILE = "evaluation.json"
LOSSES_FILE = "losses.json"
CARVE_FILE = "carve.json"
# How a set's networks get their learning rate: chosen on the carved validation part (the evidence protocol), or
# the older fixed rule (the set's learned rate, else 0.01), kept for comparison with earlier results.
EVAL_PROTOCOLS = ("lr-grid", "fixed-lr")
# Feature kinds the reconstruction can turn back into audio (``fd_mfcc_to_audio`` inverts the static MFCC);
# LPCC has no mel spectrum to invert.
AUDIO_KINDS = ("fd_mfcc", "mfcc")


def invertible(config: FeatureConfig) -> bool:
    """Whether sets in these features can be reconstructed as audio."""
    return config.kind in AUDIO_KINDS


def check_protocol_settings(eval_protocol: str, lr_grid: tuple[float, ...] | None, val_fraction: float,
                            extend_edges: int = 0) -> None:
    """Refuse an unknown protocol, a grid without it, non-positive rates, a validation share outside (0, 1) or a
    negative ``extend_edges``."""
    if eval_protocol not in EVAL_PROTOCOLS:
        raise JobSettingsError(f"unknown evaluation protocol {eval_protocol!r}; choose from {', '.join(EVAL_PROTOCOLS)}")
    if lr_grid is not None:
        if eval_protocol != "lr-grid":
            raise JobSettingsError("--lr-grid applies to --protocol lr-grid only")
        if not lr_grid or any(not lr > 0 for lr in lr_grid):
            raise JobSettingsError(f"--lr-grid must list positive learning rates, got {list(lr_grid)}")
    if not 0.0 < val_fraction < 1.0:
        raise JobSettingsError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if extend_edges:
        if eval_protocol != "lr-grid":
            raise JobSettingsError("--extend-edges applies to --protocol lr-grid only")
        if extend_edges < 0:
            raise JobSettingsError(f"--extend-edges must be 0 or more, got {extend_edges}")


def make_protocol(preset: str, model: str, width: int | None, epochs: int | None, lr_grid: tuple[float, ...] | None,
                  val_fraction: float, carve_seed: int, noise_std: float = 0.0, extend_edges: int = 0) -> EvalProtocol:
    """The evaluation protocol of a preset's recipe for ``model``, with the job's grid and carve."""
    from ddfad_apps.evidence.protocol import EvalProtocol

    changes: dict[str, Any] = {"val_fraction": val_fraction, "carve_seed": carve_seed, "noise_std": noise_std,
                               "extend_edges": extend_edges}
    if lr_grid is not None:
        changes["lr_grid"] = tuple(float(lr) for lr in lr_grid)
    return EvalProtocol.for_preset(preset, model, width, epochs, **changes)


def carve_training(protocol: EvalProtocol, train: FeatureSet) -> Carved:
    """``protocol.carve(train)``; a class too small to carve is a :class:`JobError` naming it."""
    try:
        return protocol.carve(train)
    except ValueError as exc:
        raise JobError(f"{exc}; the evaluation protocol carves a validation part from the training split") from exc


@dataclass
class DistillJob:
    """One distillation request: data set, method, clips per class, network, preset and seed make the run; the
    rest (evaluation, audio, MLflow, ``out``) say what to do with it.  ``out=None`` is
    ``runs/distill/<dataset>-<method>-cpc<N>-<model>-<preset>-s<seed>``."""

    dataset: str = "fsdd"
    data_root: Path | None = None
    split_mode: str | None = None
    group_pattern: str | None = None
    method: str = "mtt"
    cpc: int = 10
    model: str = "convnet"
    preset: str = "fast"
    iterations: int | None = None
    backprop_steps: int | None = None  # MTT only: truncated back-propagation through the last W student steps
    init: str | None = None  # MTT only: where the clips start (distill.mtt.MTT_INITS); None: the preset's
    seed: int = 0
    out: Path | None = None
    force: bool = False
    eval_seeds: int = 1
    eval_epochs: int | None = None
    eval_protocol: str = "lr-grid"
    lr_grid: tuple[float, ...] | None = None
    extend_edges: int = 0
    val_fraction: float = 0.1
    carve_seed: int = 0
    feature: str = "fd_mfcc"
    duration: float | None = None
    audio: bool = True
    device: str = "auto"
    tracking_uri: str | None = None
    experiment: str = "ddfad-distill"

    def check(self) -> None:
        """Refuse settings that name something unknown or cannot be honoured together (before reading data)."""
        from ddfad_apps.distill.presets import CORESET_METHODS, METHODS, PRESETS, mtt_plan
        from ddfad_apps.models.registry import MODEL_NAMES

        for what, value, known in (("method", self.method, METHODS), ("preset", self.preset, PRESETS),
                                   ("model", self.model, MODEL_NAMES)):
            if value not in known:
                raise JobSettingsError(f"unknown {what} {value!r}; choose from {', '.join(known)}")
        for option, value in (("--iterations", self.iterations), ("--backprop-steps", self.backprop_steps)):
            if value is not None and value < 1:  # the command's IntRange says so too; this is for Python callers
                raise JobSettingsError(f"{option} must be at least 1, got {value}")
        if self.iterations is not None and self.method in CORESET_METHODS:
            raise JobSettingsError(f"--iterations does not apply to --method {self.method}: a coreset method "
                                   "selects clips in one pass")
        if self.backprop_steps is not None:
            if self.method != "mtt":
                raise JobSettingsError(f"--backprop-steps applies to --method mtt only, not {self.method}")
            steps = mtt_plan(self.preset, self.cpc).mtt.syn_steps  # the student steps depend on preset and cpc only
            if self.backprop_steps > steps:
                raise JobSettingsError(f"--backprop-steps {self.backprop_steps} exceeds the {self.preset} preset's "
                                       f"{steps} student steps per iteration")
        if self.init is not None:
            from ddfad_apps.distill.mtt import MTT_INITS

            if self.method != "mtt":
                raise JobSettingsError(f"--init applies to --method mtt only, not {self.method}")
            if self.init not in MTT_INITS:
                raise JobSettingsError(f"unknown --init {self.init!r}; choose from {', '.join(MTT_INITS)}")
        if self.eval_epochs is not None and not self.eval_seeds:
            raise JobSettingsError("--eval-epochs has no effect with --eval-seeds 0 (no evaluation)")
        check_protocol_settings(self.eval_protocol, self.lr_grid, self.val_fraction, self.extend_edges)
        if self.audio and not invertible(self.feature_config()):
            raise JobSettingsError(f"--feature {self.feature} cannot be turned back into audio (only MFCC-based "
                                   "features can); pass --no-audio")

    def overrides(self) -> dict[str, object]:
        """The preset's method settings this job replaces (``--iterations``, ``--backprop-steps``, ``--init``)."""
        given = {"iterations": self.iterations, "backprop_steps": self.backprop_steps, "init": self.init}
        return {k: v for k, v in given.items() if v is not None}

    def feature_config(self) -> FeatureConfig:
        """The feature settings the set is distilled in (the default framing, the job's kind)."""
        return feature_config(self.feature)

    def protocol(self) -> EvalProtocol:
        """The evaluation protocol of the set's networks (also the carve made before distilling)."""
        return make_protocol(self.preset, self.model, None, self.eval_epochs, self.lr_grid, self.val_fraction,
                             self.carve_seed, extend_edges=self.extend_edges)

    def out_dir(self, short: str) -> Path:
        """The run folder: ``out``, else a name made of everything that makes the run."""
        return self.out or Path("runs") / "distill" / (f"{short}-{self.method}-cpc{self.cpc}-{self.model}-"
                                                       f"{self.preset}-s{self.seed}")


@dataclass
class DistillJobResult:
    """The distilled set, what the run folder held before (``new``, ``resume`` or ``complete``: then nothing was
    distilled), the evaluation (``{model: {mean, std, accuracies, settings}}``, as in ``evaluation.json``), the
    audio export and where the MLflow run went."""

    out: Path
    state: str
    synthetic: SyntheticSet
    evaluation: dict[str, dict[str, Any]] | None
    audio: AudioExport | None
    distill_seconds: float
    run_id: str
    tracking_uri: str
    carve: dict[str, Any] | None = None

    @property
    def test_accuracy(self) -> float | None:
        """Mean test accuracy of the distilling network trained on the set (None without evaluation)."""
        if not self.evaluation:
            return None
        return next(iter(self.evaluation.values()))["mean"]


def run_distill_job(job: DistillJob, progress: bool = True, say: Say = print) -> DistillJobResult:
    """Distil (or resume, or reuse the complete set in ``job``'s run folder), evaluate, export audio, log."""
    from ddfad_apps.distill import NotEnoughClipsError, check_clips_per_class
    from ddfad_apps.distill.presets import method_settings
    from ddfad_apps.distill.run_folder import ForeignRunError, prepare_run_folder, release_run_folder

    job.check()
    ref, options = open_dataset(job.dataset, job.data_root, job.split_mode, job.group_pattern)
    dev = open_device(job.device)
    splits = load_splits(ref, job.data_root, progress, config=job.feature_config(), duration=job.duration,
                         **options)
    carved = carve_training(job.protocol(), splits.train)  # before distilling: the set never sees these clips
    out = job.out_dir(ref.name)
    settings = method_settings(job.method, job.preset, job.cpc, len(carved.fit), model=job.model, **job.overrides())
    try:
        check_clips_per_class(carved.fit, job.cpc)
    except NotEnoughClipsError as exc:
        raise JobError(f"{exc} (after carving {len(carved.val)} validation clips off the training split)") from exc
    request = {"dataset": ref.record(), "options": options, "method": job.method, "cpc": job.cpc,
               "model": job.model, "preset": job.preset, "seed": job.seed, "settings": settings,
               "features": splits.config.as_dict(), "duration": job.duration, "carve": carved.as_dict()}
    try:
        state = prepare_run_folder(out, request, job.force)
    except ForeignRunError as exc:
        raise JobError(str(exc)) from exc
    try:
        return _run_in_folder(job, ref, options, splits, carved, settings, dev, out, state, progress, say)
    finally:
        release_run_folder(out)  # the folder is ours until here; another process may use it now


def _run_in_folder(job: DistillJob, ref: DatasetRef, options: dict[str, Any], splits: FeatureSplits,
                   carved: Carved, settings: Any, dev: torch.device, out: Path, state: str, progress: bool,
                   say: Say) -> DistillJobResult:
    """Distil into the prepared (locked) folder ``out``, or reuse its complete set; evaluate, export, log."""
    from mlflow.exceptions import MlflowException

    from ddfad_apps.tracking import tracking_run

    say(f"{ref.name}: {len(splits.train)} train ({len(carved.fit)} to distil from, {len(carved.val)} carved for "
        f"validation) / {len(splits.test)} test clips, {splits.train.num_classes} classes, input "
        f"{tuple(splits.train.input_shape)} ({splits.config.kind}); {job.method} cpc {job.cpc} ({job.preset}) on "
        f"{dev} -> {out}"
        + {"resume": " (resuming)", "complete": " (already distilled; evaluating again)"}.get(state, ""))
    write_json_atomic(out / CARVE_FILE, {**carved.as_dict(), "val_index": carved.val_index})

    params = {"dataset": ref.record(), **options, "method": job.method, "cpc": job.cpc, "model": job.model,
              "preset": job.preset, "seed": job.seed, "device": str(dev), "out": str(out), "settings": settings,
              "features": splits.config.as_dict(), "duration": splits.train.meta.get("duration"),
              "carve": carved.as_dict(), "eval_protocol": job.eval_protocol}
    try:
        with tracking_run(job.experiment, out.name, params, job.tracking_uri, tags={"command": "distill"}) as run:
            started = time.perf_counter()
            if state == "complete":
                syn, steps = _load_complete(out, splits, ref), []
            else:
                syn, steps = _distil(job, run, carved.fit, splits, settings, dev, out, progress)
                syn.meta["options"] = options
                syn.save(out)
            distill_s = time.perf_counter() - started
            run.metric("distill_seconds", distill_s)
            say(f"distilled {len(syn)} clips in {distill_s:.1f}s"
                + (f", learned lr {syn.lr:.4g}" if syn.lr is not None else ""))
            _log_losses(run, syn, out, steps, f"{job.method} {ref.name} cpc {job.cpc}")
            evaluation = _evaluate_and_log(job, run, syn, carved, splits.test, out, dev, progress, say)
            exported = _export_and_log(run, syn, ref, job.data_root, options, out) if job.audio else None
            for name in ("run.json", CARVE_FILE, "distilled.json", "distilled.safetensors", EVAL_FILE):
                if (out / name).exists():
                    run.artifact(out / name, "distilled")
            run_id, used_uri = run.run_id, run.tracking_uri
    except MlflowException as exc:
        raise JobError(f"MLflow: {exc}") from exc
    return DistillJobResult(out, state, syn, evaluation, exported, distill_s, run_id, used_uri, carved.as_dict())


def _load_complete(out: Path, splits: FeatureSplits, ref: DatasetRef) -> SyntheticSet:
    """The set a complete run folder holds, checked to fit the data it is about to be evaluated on."""
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.distill.compat import IncompatibleSetError, check_compatible
    from ddfad_apps.distill.synthetic_set import InvalidSetError

    try:
        syn = SyntheticSet.load(out)
        check_compatible(syn, splits.train, splits.stats, f"the distilled set in {out}",
                         f"data set {ref.name!r} ({ref.argument})")
    except (InvalidSetError, IncompatibleSetError) as exc:
        raise JobError(f"{exc}; pass --force to distil it again") from exc
    return syn


def _distil(job: DistillJob, run: RunLogger, fit: FeatureSet, splits: FeatureSplits, settings: Any,
            dev: torch.device, out: Path, progress: bool) -> tuple[SyntheticSet, list[dict[str, float]]]:
    """Run the method on ``fit`` (the training split less the carved validation part; MTT resumes from ``out``'s
    checkpoint); each step's metrics go to MLflow as they come."""
    from ddfad_apps.distill import NotEnoughClipsError, distill
    from ddfad_apps.distill.compat import NonFiniteInputError
    from ddfad_apps.distill.run_folder import CHECKPOINT_FILE
    from ddfad_apps.training import NonFiniteLossError

    steps: list[dict[str, float]] = []

    def on_step(rec: dict[str, float]) -> None:
        steps.append({"iteration": int(rec["iteration"]), "loss": float(rec["loss"])})
        run.metrics({k: v for k, v in rec.items() if k != "iteration"}, step=int(rec["iteration"]))

    checkpoint = out / CHECKPOINT_FILE
    try:
        syn = distill(fit, job.cpc, job.method, job.preset, settings=settings, seed=job.seed, device=dev,
                      test=splits.test, stats=splits.stats, checkpoint=checkpoint, progress=progress,
                      on_step=on_step)
    except (NotEnoughClipsError, NonFiniteInputError) as exc:
        raise JobError(str(exc)) from exc
    except NonFiniteLossError as exc:
        note = f"; the last good checkpoint is kept in {checkpoint}" if checkpoint.exists() else ""
        raise JobError(f"{exc}{note}") from exc
    checkpoint.unlink(missing_ok=True)
    return syn, steps


def _log_losses(run: RunLogger, syn: SyntheticSet, out: Path, steps: list[dict[str, float]], title: str) -> None:
    """Keep the loss per iteration beside the set (so a re-evaluated run can still draw it), draw and log it.

    MTT's set carries its whole loss history (a resumed run included); other methods' come from ``steps``.
    """
    path = out / LOSSES_FILE
    if path.exists():
        losses = json.loads(path.read_text())
    else:
        losses = [{"iteration": i + 1, "loss": v} for i, v in enumerate(syn.meta.get("losses", []))] or steps
        if losses:
            write_json_atomic(path, losses)
    if losses:
        fig = loss_figure(losses, title)
        fig.savefig(out / "losses.png", dpi=120)
        run.figure(fig, "losses.png")


def loss_figure(history: list[dict[str, float]], title: str):
    """The matching loss against the iteration (a matplotlib figure)."""
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


def _evaluate_and_log(job: DistillJob, run: RunLogger, syn: SyntheticSet, carved: Carved, test: FeatureSet,
                      out: Path, dev: torch.device, progress: bool, say: Say) -> dict[str, dict[str, Any]] | None:
    """Train ``job.eval_seeds`` fresh networks of the distilling kind on the set (learning rate as
    ``job.eval_protocol`` says); write and log their accuracy."""
    if not job.eval_seeds:
        return None
    if job.eval_protocol == "lr-grid":
        results = {job.model: evaluate_with_protocol(syn, carved, test, job.protocol(), job.eval_seeds, dev,
                                                     progress, say).as_dict()}
    else:
        from ddfad_apps.distill.evaluate import evaluate_models

        results = evaluate_models(syn, test, [job.model], job.eval_seeds, job.preset, dev, progress,
                                  epochs=job.eval_epochs, report=say)
        for r in results.values():
            r["carve"] = carved.as_dict()
    write_json_atomic(out / EVAL_FILE, results)
    log_accuracies(run, results)
    return results


@contextmanager
def protocol_errors() -> Iterator[None]:
    """The evidence functions' faults (a set that does not fit, a diverging loss, missing audio) as
    :class:`JobError`."""
    from ddfad_apps.distill.compat import IncompatibleSetError
    from ddfad_apps.training import NonFiniteLossError

    try:
        yield
    except (IncompatibleSetError, NonFiniteLossError, ValueError, FileNotFoundError) as exc:
        raise JobError(str(exc)) from exc


def evaluate_with_protocol(data: Any, carved: Carved, test: FeatureSet, protocol: EvalProtocol,
                           seeds: int | list[int], dev: torch.device, progress: bool, say: Say) -> SetEvaluation:
    """:func:`~ddfad_apps.evidence.protocol.evaluate_set` as a job step: a line for the user, faults as
    :class:`JobError`.  Its ``as_dict()`` keeps ``mean`` and ``std`` at the top, as the fixed-lr results do."""
    from ddfad_apps.evidence.protocol import evaluate_set

    with protocol_errors():
        ev = evaluate_set(data, carved, test, protocol, seeds, dev, progress=progress)
    say(f"  {ev}")
    return ev


def log_accuracies(run: RunLogger, results: dict[str, dict[str, Any]], tag: str = "") -> None:
    """``test_accuracy_<model><tag>``, ``test_accuracy_std_<model><tag>`` and (protocol) ``lr_<model><tag>``."""
    run.metrics({f"test_accuracy_{m}{tag}": r["mean"] for m, r in results.items()})
    run.metrics({f"test_accuracy_std_{m}{tag}": r["std"] for m, r in results.items()})
    run.metrics({f"lr_{m}{tag}": r["lr"] for m, r in results.items() if isinstance(r.get("lr"), float)})


def _export_and_log(run: RunLogger, syn: SyntheticSet, ref: DatasetRef, data_root: Path | None,
                    options: dict[str, Any], out: Path) -> AudioExport:
    """Reconstruct the set as WAV clips beside it (with the original-vs-distilled figure) and log both."""
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.reconstruct.export import export_audio

    exported = export_audio(syn, list_clips(ref.argument, "train", data_root, duration=syn.meta.get("duration"),
                                            **options), out)
    run.artifact(exported.audio_dir, "audio")
    run.artifact(exported.figure)
    return exported


@dataclass
class DistilledRun:
    """A run folder read back: its request, its checked set, the data set it names (or the one the user named
    instead) and that data set's loader options."""

    folder: Path
    request: dict[str, Any]
    synthetic: SyntheticSet
    dataset: DatasetRef
    options: dict[str, Any]

    @property
    def duration(self) -> float | None:
        """The clip length asked for at distillation (``--duration``; None: the data set's own default)."""
        return self.request.get("duration")

    def feature_config(self, kind: str | None = None) -> FeatureConfig:
        """The feature settings recorded in ``run.json`` (the defaults for older folders); ``kind`` replaces the
        recorded kind (a set is then refused by the compatibility check, naming the difference)."""
        from ddfad_apps.features import FeatureConfig

        recorded = self.request.get("features") or {}
        try:
            config = FeatureConfig(**recorded)
            return config.replace(kind=kind) if kind is not None else config
        except (TypeError, ValueError) as exc:
            raise JobError(f"{self.folder / 'run.json'} records feature settings {recorded}: {exc}") from exc

    def load_splits(self, data_root: str | Path | None = None, progress: bool = True, kind: str | None = None,
                    duration: float | None = None) -> FeatureSplits:
        """The data set's features as the set was distilled in them (``kind``/``duration`` override)."""
        return load_splits(self.dataset, data_root, progress, config=self.feature_config(kind),
                           duration=duration or self.duration, **self.options)

    def carve_settings(self) -> tuple[float, int]:
        """``(val_fraction, carve_seed)`` of the carve made before distilling (the defaults for older folders)."""
        recorded = self.request.get("carve") or {}
        return float(recorded.get("val_fraction", 0.1)), int(recorded.get("carve_seed", 0))

    def carve(self, protocol: EvalProtocol, train: FeatureSet) -> Carved:
        """The validation part carved before distilling, carved again from ``train`` with the recorded settings;
        refused for a folder made before the protocol (its set may hold validation clips) or when the recorded
        sizes differ (other training clips)."""
        recorded = self.request.get("carve")
        if not recorded:
            raise JobError(f"{self.folder} was distilled before the evaluation protocol (no carve in run.json): its "
                           "set may hold validation clips; pass --protocol fixed-lr or distil it again")
        carved = carve_training(protocol.with_changes(val_fraction=recorded["val_fraction"],
                                                      carve_seed=recorded["carve_seed"]), train)
        if (len(carved.fit), len(carved.val)) != (recorded["fit_clips"], recorded["val_clips"]):
            raise JobError(f"{self.folder} was distilled from {recorded['fit_clips']} clips with "
                           f"{recorded['val_clips']} carved for validation; the data now gives {len(carved.fit)} and "
                           f"{len(carved.val)}: not the training split the set was made from")
        return carved


def open_run_folder(folder: str | Path, dataset: str | Path | None = None,
                    data_root: str | Path | None = None) -> DistilledRun:
    """Read the run folder ``folder`` for a later job; every fault (missing or damaged files, a recorded folder
    that moved or changed, a ``data_root`` with a folder data set) is a :class:`JobError` naming it."""
    from ddfad_apps.data.registry import dataset_from_record
    from ddfad_apps.distill import SyntheticSet
    from ddfad_apps.distill.presets import PRESETS
    from ddfad_apps.distill.run_folder import RUN_FILE, read_request
    from ddfad_apps.distill.synthetic_set import InvalidSetError

    folder = Path(folder)
    try:
        request = read_request(folder)
        syn = SyntheticSet.load(folder)
        ref = dataset_from_record(request.get("dataset"), dataset, str(folder / RUN_FILE))
    except (FileNotFoundError, InvalidSetError, ValueError) as exc:
        raise JobError(str(exc)) from exc
    check_data_root(ref, data_root)
    if request.get("preset") not in PRESETS:
        raise JobError(f"{folder / RUN_FILE} records preset {request.get('preset')!r}; expected one of "
                       f"{', '.join(PRESETS)}")
    options = request.get("options") or {}
    if set(options) == {"group_pattern"} and ref.folder is not None:
        pass  # a folder data set split by group
    elif options and not takes_split_mode(ref):
        raise JobError(f"{folder / RUN_FILE} records options {options} for data set {request.get('dataset')!r}, "
                       f"which {ref.argument} does not take")
    return DistilledRun(folder, request, syn, ref, options)
