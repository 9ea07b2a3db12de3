"""A distilled set as something to listen to and look at: its WAV folder, listening page and Figure 6.

Shared by ``ddfad-apps distill`` (which exports right after distilling) and ``ddfad-apps reconstruct``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch

from ddfad_apps.data.audio_io import read_many
from ddfad_apps.data.clips import ClipList
from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.reconstruct.figures import plot_original_vs_distilled
from ddfad_apps.reconstruct.page import AUDIO_DIR, write_listening_page
from ddfad_apps.reconstruct.writer import MANIFEST, write_audio_dataset

FIGURE_FILE = "original_vs_distilled.png"


@dataclass
class AudioExport:
    audio_dir: Path
    figure: Path
    page: Path | None = None  # audio_dir / "index.html", the listening page


def export_audio(syn: SyntheticSet, real_clips: ClipList, out: str | Path, config: FeatureConfig | None = None,
                 n_iter: int = 32, device: torch.device | str | None = None, page_clips: int = 3) -> AudioExport:
    """Write ``out/audio`` (one WAV per clip + manifest + ``index.html``) and ``out/original_vs_distilled.png``.

    ``real_clips`` is the training split the set was distilled from: its first clip of each class is drawn
    beside the first distilled clip of that class (the paper's Figure 6), and its first ``page_clips`` clips of
    each class are played beside as many distilled ones on the listening page (0: no page).
    """
    out = Path(out)
    if config is None:
        config = syn.feature_config
    audio_dir = write_audio_dataset(syn, out / AUDIO_DIR, real_clips.sample_rate, config, real_clips.duration,
                                    n_iter, device=device)
    first = [real_clips.labels.index(c) for c in range(len(real_clips.classes))]
    waves, kept = read_many([real_clips.paths[i] for i in first], real_clips.sample_rate, real_clips.num_samples,
                            on_error="skip", progress=False)
    real_labels = torch.tensor([real_clips.labels[first[i]] for i in kept])
    manifest = json.loads((audio_dir / MANIFEST).read_text())
    first_synth = {}
    for clip in manifest["clips"]:
        first_synth.setdefault(clip["label"], clip["path"])
    labels = sorted(first_synth)
    synth = torch.stack([torch.from_numpy(sf.read(str(audio_dir / first_synth[c]), dtype="float32")[0])
                         for c in labels])
    figure = plot_original_vs_distilled(waves, real_labels, synth, torch.tensor(labels), syn.classes,
                                        real_clips.sample_rate, out / FIGURE_FILE)
    page = write_listening_page(out, real_clips, page_clips) if page_clips else None
    return AudioExport(audio_dir, figure, page)


def log_to_active_run(exported: AudioExport) -> str | None:
    """Log the export (audio folder with its page, and the figure) to the active MLflow run; return its id.

    "Active" is a run started in this process, or the run named by ``MLFLOW_RUN_ID`` (as ``mlflow run`` and
    job schedulers set it), which is logged to without being ended.  Without either nothing happens, and MLflow
    is not even imported.
    """
    env_run = os.environ.get("MLFLOW_RUN_ID")
    if "mlflow" not in sys.modules and not env_run:
        return None
    import mlflow
    from mlflow.tracking import MlflowClient

    active = mlflow.active_run()
    run_id = active.info.run_id if active is not None else env_run
    if not run_id:
        return None
    client = MlflowClient()
    client.log_artifacts(run_id, str(exported.audio_dir), AUDIO_DIR)
    client.log_artifact(run_id, str(exported.figure))
    return run_id
