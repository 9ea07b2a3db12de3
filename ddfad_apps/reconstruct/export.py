"""A distilled set as something to listen to and look at: its WAV folder and the original-vs-distilled figure.

Shared by ``ddfad-apps distill`` (which exports right after distilling) and ``ddfad-apps reconstruct``.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

import soundfile as sf
import torch

from ddfad_apps.data.audio_io import read_many
from ddfad_apps.data.clips import ClipList
from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.reconstruct.figures import plot_original_vs_distilled
from ddfad_apps.reconstruct.writer import MANIFEST, write_audio_dataset

AUDIO_DIR = "audio"
FIGURE_FILE = "original_vs_distilled.png"


@dataclass
class AudioExport:
    audio_dir: Path
    figure: Path


def export_audio(syn: SyntheticSet, real_clips: ClipList, out: str | Path, config: FeatureConfig | None = None,
                 n_iter: int = 32, device: torch.device | str | None = None) -> AudioExport:
    """Write ``out/audio`` (one WAV per clip + manifest) and ``out/original_vs_distilled.png``.

    ``real_clips`` is the training split the set was distilled from: its first clip of each class is drawn
    beside the first distilled clip of that class (the paper's Figure 6).
    """
    out = Path(out)
    if config is None:
        config = FeatureConfig(**syn.meta["features"]) if syn.meta.get("features") else FeatureConfig()
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
    return AudioExport(audio_dir, figure)
