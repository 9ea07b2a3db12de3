"""The reconstruction job: turn a distilled set into playable WAV clips beside it.

``run_reconstruct_job(ReconstructJob("runs/distill/fsdd-mtt-cpc10-convnet-fast-s0"))`` is what
``ddfad-apps reconstruct`` runs: ``FOLDER/audio/<class>/*.wav`` + ``manifest.json`` + a listening page, and
``FOLDER/original_vs_distilled.png``.  The set is first checked against the data set it was distilled from
(classes, sample rate, clip length).  It opens no MLflow run of its own; inside an active one (``MLFLOW_RUN_ID``,
as ``mlflow run`` sets it) the export is logged there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ddfad_apps.jobs.data import open_device
from ddfad_apps.jobs.distill import AUDIO_KINDS, invertible, open_run_folder
from ddfad_apps.jobs.errors import JobError

if TYPE_CHECKING:
    from ddfad_apps.reconstruct.export import AudioExport


@dataclass
class ReconstructJob:
    """Which run folder, how many Griffin-Lim iterations, and (if it moved) which data set it came from."""

    folder: Path
    n_iter: int = 32
    dataset: str | None = None
    data_root: Path | None = None
    device: str = "auto"


@dataclass
class ReconstructJobResult:
    """Where the audio, figure and listening page went, how many clips, and the MLflow run it was logged to."""

    export: AudioExport
    num_clips: int
    run_id: str | None


def run_reconstruct_job(job: ReconstructJob) -> ReconstructJobResult:
    """Write the set in ``job.folder`` as WAV clips with its figure and listening page; log into an active run."""
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.distill.compat import check_compatible
    from ddfad_apps.reconstruct.export import export_audio, log_to_active_run

    run = open_run_folder(job.folder, job.dataset, job.data_root)
    syn, ref = run.synthetic, run.dataset
    if not invertible(run.feature_config()):
        raise JobError(f"the set in {job.folder} is in {run.feature_config().kind} features, which cannot be turned "
                       f"into audio: only {' and '.join(AUDIO_KINDS)} sets can be reconstructed")
    dev = open_device(job.device)
    try:
        clips = list_clips(ref.argument, "train", job.data_root, duration=run.duration, **run.options)
        check_compatible(syn, clips, None, f"the distilled set in {job.folder}",
                         f"data set {ref.name!r} ({ref.argument})")
        exported = export_audio(syn, clips, job.folder, n_iter=job.n_iter, device=dev)
    except (OSError, ValueError) as exc:
        raise JobError(str(exc)) from exc
    return ReconstructJobResult(exported, len(syn), log_to_active_run(exported))
