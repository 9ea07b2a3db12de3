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

    def lengths(self) -> list[float | None]:
        """Each clip's length in seconds from its file header (no decoding); None for a file that cannot be read
        (reading it reports the fault)."""
        import soundfile as sf

        out: list[float | None] = []
        for p in self.paths:
            try:
                info = sf.info(str(p))
                out.append(info.frames / info.samplerate)
            except (RuntimeError, OSError):
                out.append(None)
        return out

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


class CroppedClipsWarning(UserWarning):
    """Clips longer than the target length were cropped (part of each is lost)."""


def crop_message(clips: list[ClipList]) -> str | None:
    """``"312 of 1,150 clips (27%) are longer than 1.00 s and were cropped ..."`` over ``clips`` (one data set's
    splits, same ``duration``), or None when none is longer.  Half a sample of slack: a clip of exactly the
    target length read at another rate is not cropped."""
    if not clips:
        return None
    duration, rate = clips[0].duration, clips[0].sample_rate
    lengths = [x for c in clips for x in c.lengths() if x is not None]
    longer = [x for x in lengths if x > duration + 0.5 / rate]
    if not longer:
        return None
    total = sum(len(c) for c in clips)
    return (f"{len(longer):,} of {total:,} clips ({100 * len(longer) / total:.0f}%) of {clips[0].root} are longer "
            f"than {duration:.2f} s and were cropped (the longest is {max(longer):.2f} s); pass --duration "
            f"{max(longer):.2f} to keep them whole")
