"""A thin ``nn.Module`` around :func:`ddfad_apps.reconstruct.functional.fd_mfcc_to_audio`, for pipelines."""

from __future__ import annotations

import torch
from torch import nn

from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.reconstruct.functional import SYNTHESIS_OVERLAP, fd_mfcc_to_audio


class FDMFCCInverse(nn.Module):
    """Raw FD-MFCC ``(N, 3, n_mfcc, frames)`` -> waveforms ``(N, T)``: the approximate inverse of ``FDMFCC``."""

    def __init__(
        self, sample_rate: int, config: FeatureConfig | None = None, n_iter: int = 32, momentum: float = 0.99,
        regularization: float = 1e-2, length: int | None = None, overlap: int = SYNTHESIS_OVERLAP,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.config = config or FeatureConfig()
        self.n_iter, self.momentum, self.regularization, self.length = n_iter, momentum, regularization, length
        self.overlap = overlap

    def forward(self, features_raw: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return fd_mfcc_to_audio(
            features_raw, self.sample_rate, self.config, self.n_iter, momentum=self.momentum,
            regularization=self.regularization, generator=generator, length=self.length, overlap=self.overlap,
        )

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_iter={self.n_iter}, kind={self.config.kind}"
