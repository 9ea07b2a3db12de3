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
from ddfad_apps.features.cache import cache_key, feature_cache_dir, load_or_build, save_atomic
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
        meta = dict(self.meta)
        if meta.get("groups") is not None:  # one group per row (see :func:`row_groups`): sliced with the rows
            groups = row_groups(self)
            meta["groups"] = [groups[i] for i in index.tolist()]
        return FeatureSet(self.features[index], self.labels[index], self.classes, meta)

    def to(self, device: torch.device | str) -> "FeatureSet":
        return FeatureSet(self.features.to(device), self.labels.to(device), self.classes, dict(self.meta))

    def class_indices(self, c: int) -> torch.Tensor:
        return torch.nonzero(self.labels == c, as_tuple=False).flatten()


def row_groups(data: FeatureSet) -> list[str] | None:
    """Each row's group (speaker...) when the set knows it (``meta["groups"]``, from a folder data set's group
    pattern or manifest), else None; a list not aligned with the rows is an error, never silently misapplied."""
    groups = data.meta.get("groups")
    if groups is not None and len(groups) != len(data):
        raise ValueError(f"meta['groups'] holds {len(groups)} groups for {len(data)} clips")
    return groups


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
        row = {p: i for i, p in enumerate(clips.paths)}  # which clips were kept (``on_error='skip'``)
        return {"features": torch.cat(parts), "labels": waves.labels,
                "rows": torch.tensor([row[p] for p in waves.paths], dtype=torch.long)}

    cached = load_or_build(path, build) if use_cache else build()  # one extractor per cache entry (a file lock)
    meta = {"dataset": clips.dataset, "split": clips.split, "sample_rate": clips.sample_rate,
            "duration": clips.duration, "features": config.as_dict()}
    groups = clips.meta.get("groups")
    if groups is not None:
        rows = cached.get("rows")
        if rows is None and len(cached["labels"]) != len(clips):  # an entry from before rows were recorded
            cached = build()
            if use_cache:
                save_atomic(cached, path)
            rows = cached["rows"]
        meta["groups"] = list(groups) if rows is None else [groups[i] for i in rows.tolist()]
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
