"""From a data set name to normalised feature tensors in memory: the input of training, distillation, CL and NAS.

FD-MFCC data sets are small (FSDD: 3,000 x 3 x 20 x 51 floats, 37 MB), so they live in one tensor and
mini-batches are index slices: no DataLoader workers, no per-clip Python on the hot path.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ddfad_apps.data.clips import ClipList, CroppedClipsWarning, crop_message
from ddfad_apps.data.registry import list_clips
from ddfad_apps.features.cache import cache_key, feature_cache_dir, load_or_build
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.features.normalize import FeatureStats


@dataclass
class FeatureSet:
    """Features ``(N, C, coeffs, frames)`` with integer labels and class names."""

    features: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.features.shape[1:])  # type: ignore[return-value]

    def subset(self, index: torch.Tensor | list[int]) -> "FeatureSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return FeatureSet(self.features[index], self.labels[index], self.classes, dict(self.meta))

    def to(self, device: torch.device | str) -> "FeatureSet":
        return FeatureSet(self.features.to(device), self.labels.to(device), self.classes, dict(self.meta))

    def class_indices(self, c: int) -> torch.Tensor:
        return torch.nonzero(self.labels == c, as_tuple=False).flatten()


def extract_clip_features(
    clips: ClipList, config: FeatureConfig, use_cache: bool = True, on_error: str = "raise", progress: bool = True,
    batch_size: int = 512, device: torch.device | str = "cpu",
) -> FeatureSet:
    """Raw (unnormalised) features of every clip, from the cache when the same clips and settings were seen."""
    path = feature_cache_dir() / f"{clips.dataset}-{clips.split}-{cache_key(clips, config, on_error)}.pt"

    def build() -> dict:
        waves = clips.load(on_error=on_error, progress=progress)
        parts = []
        for start in tqdm(range(0, len(waves), batch_size), desc="features", disable=not progress, leave=False):
            chunk = waves.waveforms[start : start + batch_size].to(device)
            parts.append(config.extract(chunk, clips.sample_rate).cpu())
        return {"features": torch.cat(parts), "labels": waves.labels}

    cached = load_or_build(path, build) if use_cache else build()  # one extractor per cache entry (a file lock)
    meta = {"dataset": clips.dataset, "split": clips.split, "sample_rate": clips.sample_rate,
            "duration": clips.duration, "features": config.as_dict()}
    return FeatureSet(cached["features"], cached["labels"], list(clips.classes), meta)


@dataclass
class FeatureSplits:
    """Normalised train and test features and the training-split statistics used to normalise both."""

    train: FeatureSet
    test: FeatureSet
    stats: FeatureStats
    config: FeatureConfig

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def load_features(
    dataset: str, data_root: str | Path | None = None, config: FeatureConfig | None = None,
    sample_rate: int | None = None, duration: float | None = None, use_cache: bool = True,
    on_error: str = "raise", progress: bool = True, **options,
) -> FeatureSplits:
    """Train/test features of ``dataset``, normalised with statistics of the training split only."""
    config = config or FeatureConfig()
    listed = {split: list_clips(dataset, split, data_root, sample_rate, duration, **options)
              for split in ("train", "test")}
    if listed["train"].dataset == "folder":  # a registered data set's length is chosen for it; a folder's is a guess
        message = crop_message(list(listed.values()))
        if message:
            warnings.warn(message, CroppedClipsWarning, stacklevel=2)
    sets = {split: extract_clip_features(clips, config, use_cache, on_error, progress)
            for split, clips in listed.items()}
    stats = FeatureStats.fit(sets["train"].features)
    for fs in sets.values():
        fs.features = stats.apply(fs.features)
    return FeatureSplits(sets["train"], sets["test"], stats, config)
