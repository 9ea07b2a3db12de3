"""What every data set loader returns: the list of clips of one split, before any audio is decoded."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddfad_apps.data.audio_io import read_many


class EmptyClassError(ValueError):
    """A class of the data set has no clip in the requested split."""


@dataclass
class ClipList:
    """Files, labels and audio settings of one split of one data set.

    ``sample_rate`` and ``duration`` are the target every clip is resampled and padded/cropped to.
    """

    dataset: str
    split: str
    root: Path
    paths: list[Path]
    labels: list[int]
    classes: list[str]
    sample_rate: int
    duration: float
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError("paths and labels differ in length")
        counts = Counter(self.labels)
        empty = [c for i, c in enumerate(self.classes) if counts.get(i, 0) == 0]
        if empty:
            raise EmptyClassError(
                f"{self.dataset} ({self.split} split, {self.root}): class(es) {empty} have no clips; "
                "check the data set is complete"
            )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.duration))

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {c: counts.get(i, 0) for i, c in enumerate(self.classes)}

    def fingerprint(self) -> str:
        """Hash of which files (with their sizes and modification times) make the split and how they are read."""
        h = hashlib.sha256()
        h.update(f"{self.dataset}|{self.split}|{self.sample_rate}|{self.duration}|{self.classes}".encode())
        for p, y in zip(self.paths, self.labels):
            st = p.stat()
            h.update(f"{p}|{y}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def load(self, on_error: str = "raise", progress: bool = True) -> "WaveformSet":
        """Decode every clip (see :func:`ddfad_apps.data.audio_io.read_many` for ``on_error``)."""
        waves, kept = read_many(
            self.paths, self.sample_rate, self.num_samples, on_error=on_error, progress=progress,
            desc=f"{self.dataset}/{self.split}",
        )
        labels = torch.tensor([self.labels[i] for i in kept], dtype=torch.long)
        return WaveformSet(waves, labels, list(self.classes), self.sample_rate, [self.paths[i] for i in kept])


@dataclass
class WaveformSet:
    """Decoded clips ``(N, T)`` with labels, ready for feature extraction."""

    waveforms: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    sample_rate: int
    paths: list[Path]

    def __len__(self) -> int:
        return self.waveforms.shape[0]
