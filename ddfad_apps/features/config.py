"""One frozen description of a feature pipeline: it names the extractor, and it is the feature cache's key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ddfad_apps.features import functional as AF

FEATURE_KINDS = ("fd_mfcc", "mfcc", "lpcc")


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings.  Defaults: 20 ms frames, 20 ms hop (see README: halves the ConvNet's cost against a
    10 ms hop at no measurable accuracy loss), 40 mel bands, 20 coefficients, pre-emphasis 0.97, 9-frame deltas."""

    kind: str = "fd_mfcc"
    n_coeffs: int = 20
    frame_ms: float = 20.0
    hop_ms: float = 20.0
    n_mels: int = 40
    pre_emphasis: float = 0.97
    delta_width: int = 9
    top_db: float | None = 80.0
    lpc_order: int = 12

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {self.kind!r}; choose one of {FEATURE_KINDS}")
        if self.hop_ms <= 0 or self.frame_ms <= 0:
            raise ValueError("frame_ms and hop_ms must be positive")

    @property
    def channels(self) -> int:
        return 3 if self.kind == "fd_mfcc" else 1

    def replace(self, **changes) -> "FeatureConfig":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def num_frames(self, num_samples: int, sample_rate: int) -> int:
        _, hop, _ = AF.frame_params(sample_rate, self.frame_ms, self.hop_ms)
        return 1 + num_samples // hop

    def extract(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Waveforms ``(N, T)`` -> features ``(N, channels, n_coeffs, frames)``."""
        if self.kind == "fd_mfcc":
            return AF.fd_mfcc(
                waveform, sample_rate, n_mfcc=self.n_coeffs, frame_ms=self.frame_ms, hop_ms=self.hop_ms,
                n_mels=self.n_mels, pre_emphasis_coef=self.pre_emphasis, delta_width=self.delta_width,
                top_db=self.top_db,
            )
        if self.kind == "mfcc":
            win, hop, n_fft = AF.frame_params(sample_rate, self.frame_ms, self.hop_ms)
            out = AF.mfcc(
                AF.pre_emphasis(waveform, self.pre_emphasis), sample_rate, n_mfcc=self.n_coeffs, n_fft=n_fft,
                hop_length=hop, win_length=win, n_mels=self.n_mels, top_db=self.top_db,
            )
        else:
            out = AF.lpcc(
                waveform, sample_rate, n_lpcc=self.n_coeffs, lpc_order=self.lpc_order, frame_ms=self.frame_ms,
                hop_ms=self.hop_ms, pre_emphasis_coef=self.pre_emphasis,
            )
        return out.unsqueeze(-3)
