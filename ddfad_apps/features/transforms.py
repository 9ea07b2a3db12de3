"""Thin ``nn.Module`` wrappers around :mod:`ddfad_apps.features.functional`, for use inside models and pipelines."""

from __future__ import annotations

import torch
from torch import nn

from ddfad_apps.features import functional as AF
from ddfad_apps.features.config import FeatureConfig


class FeatureExtractor(nn.Module):
    """Waveforms ``(N, T)`` at ``sample_rate`` -> features ``(N, C, coeffs, frames)`` as ``config`` describes."""

    def __init__(self, sample_rate: int, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.config = config or FeatureConfig()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.config.extract(waveform, self.sample_rate)


class FDMFCC(FeatureExtractor):
    """Fused-difference MFCC ``(N, 3, n_mfcc, frames)``: MFCC, delta and delta-delta stacked as channels."""

    def __init__(self, sample_rate: int, n_mfcc: int = 20, frame_ms: float = 20.0, hop_ms: float = 20.0, **kw) -> None:
        super().__init__(sample_rate, FeatureConfig("fd_mfcc", n_coeffs=n_mfcc, frame_ms=frame_ms, hop_ms=hop_ms, **kw))


class MFCC(FeatureExtractor):
    """Plain MFCC ``(N, 1, n_mfcc, frames)`` (feature ablation)."""

    def __init__(self, sample_rate: int, n_mfcc: int = 20, frame_ms: float = 20.0, hop_ms: float = 20.0, **kw) -> None:
        super().__init__(sample_rate, FeatureConfig("mfcc", n_coeffs=n_mfcc, frame_ms=frame_ms, hop_ms=hop_ms, **kw))


class LPCC(FeatureExtractor):
    """LPC cepstrum ``(N, 1, n_lpcc, frames)`` (feature ablation)."""

    def __init__(self, sample_rate: int, n_lpcc: int = 20, lpc_order: int = 12, **kw) -> None:
        super().__init__(sample_rate, FeatureConfig("lpcc", n_coeffs=n_lpcc, lpc_order=lpc_order, **kw))


class Delta(nn.Module):
    """``librosa.feature.delta`` along the last axis as a module."""

    def __init__(self, order: int = 1, width: int = 9) -> None:
        super().__init__()
        self.order, self.width = order, width

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return AF.delta(features, self.order, self.width)
