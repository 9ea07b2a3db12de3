"""Data sets by name: ``list_clips('fsdd', 'train')`` and the audio defaults chosen for each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.folder import list_folder
from ddfad_apps.data.fsdd import list_fsdd
from ddfad_apps.data.ravdess import list_ravdess
from ddfad_apps.data.urbansound8k import list_urbansound8k


@dataclass(frozen=True)
class DatasetSpec:
    """A data set's lister and its default audio settings (rate, duration chosen to cover most clips)."""

    name: str
    lister: Callable[..., ClipList]
    sample_rate: int
    duration: float
    num_classes: int


DATASETS: dict[str, DatasetSpec] = {
    "fsdd": DatasetSpec("fsdd", list_fsdd, 8000, 1.0, 10),
    "ravdess": DatasetSpec("ravdess", list_ravdess, 16000, 3.0, 8),
    "urbansound8k": DatasetSpec("urbansound8k", list_urbansound8k, 16000, 4.0, 10),
}


def list_clips(
    name: str, split: str = "train", data_root: str | Path | None = None, sample_rate: int | None = None,
    duration: float | None = None, **options,
) -> ClipList:
    """Clips of ``split`` of data set ``name``; ``name`` may also be a folder path (one sub-folder per class)."""
    key = name.lower()
    if key not in DATASETS:
        if Path(name).expanduser().is_dir():
            return list_folder(name, split, sample_rate, duration, **options)
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)} or give a folder path")
    spec = DATASETS[key]
    return spec.lister(
        split=split, data_root=data_root, sample_rate=sample_rate or spec.sample_rate,
        duration=duration or spec.duration, **options,
    )
