"""``nn.Module`` feature extractors over :mod:`ddfad_apps.features.functional`, in torchaudio's style.

Each module computes its fixed matrices once (analysis window, mel filter bank, DCT) and holds them as buffers,
so ``.to(device)`` moves them with the module and a model can carry its front end; ``forward`` is one call into
the functional layer.  Buffers are built in float64 and cast to the input's dtype at use, so a float64 input gets
float64-accurate filters (the librosa parity tests rely on it) and a float32 input gets the same numbers the
functional layer computes.  :data:`FEATURE_MODULES` maps each :class:`FeatureConfig` kind to its module.
"""

from __future__ import annotations

import torch
from torch import nn

from ddfad_apps.features import functional as AF
from ddfad_apps.features.config import FeatureConfig


def _buffer(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(device=like.device, dtype=like.dtype)


class MFCC(nn.Module):
    """Plain MFCC ``(..., 1, n_mfcc, frames)`` of waveforms ``(..., time)`` (the feature ablation's baseline)."""

    kind = "mfcc"

    def __init__(self, sample_rate: int, n_mfcc: int = 20, frame_ms: float = 20.0, hop_ms: float = 20.0,
                 n_mels: int = 40, pre_emphasis: float = 0.97, top_db: float | None = 80.0,
                 window: str = "hann") -> None:
        super().__init__()
        self.config = FeatureConfig(self.kind, n_coeffs=n_mfcc, frame_ms=frame_ms, hop_ms=hop_ms, n_mels=n_mels,
                                    pre_emphasis=pre_emphasis, top_db=top_db, window=window)
        self.sample_rate = sample_rate
        self.win_length, self.hop_length, self.n_fft = AF.frame_params(sample_rate, frame_ms, hop_ms)
        self.register_buffer("window", AF.analysis_window(window, self.win_length, dtype=torch.float64))
        self.register_buffer("mel_fb", AF.mel_filterbank(sample_rate, self.n_fft, n_mels, dtype=torch.float64))
        self.register_buffer("dct", AF.dct_matrix(n_mfcc, n_mels, dtype=torch.float64))

    def coefficients(self, waveform: torch.Tensor) -> torch.Tensor:
        """MFCC ``(..., n_mfcc, frames)``: pre-emphasis, STFT, mel, dB, DCT with this module's buffers."""
        c = self.config
        return AF.mfcc(AF.pre_emphasis(waveform, c.pre_emphasis), self.sample_rate, n_mfcc=c.n_coeffs,
                       n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length, n_mels=c.n_mels,
                       top_db=c.top_db, window=_buffer(self.window, waveform),
                       filterbank=_buffer(self.mel_fb, waveform), dct=_buffer(self.dct, waveform))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.coefficients(waveform).unsqueeze(-3)

    @classmethod
    def from_config(cls, config: FeatureConfig, sample_rate: int) -> "MFCC":
        return cls(sample_rate, config.n_coeffs, config.frame_ms, config.hop_ms, config.n_mels, config.pre_emphasis,
                   config.top_db, config.window)


class FDMFCC(MFCC):
    """Fused-difference MFCC ``(..., 3, n_mfcc, frames)``: MFCC, delta and delta-delta stacked as channels."""

    kind = "fd_mfcc"

    def __init__(self, sample_rate: int, n_mfcc: int = 20, frame_ms: float = 20.0, hop_ms: float = 20.0,
                 n_mels: int = 40, pre_emphasis: float = 0.97, top_db: float | None = 80.0,
                 delta_width: int = 9, window: str = "hann") -> None:
        super().__init__(sample_rate, n_mfcc, frame_ms, hop_ms, n_mels, pre_emphasis, top_db, window)
        self.config = self.config.replace(delta_width=delta_width)
        self.register_buffer("delta1", AF.delta_kernel(delta_width, 1, dtype=torch.float64))
        self.register_buffer("delta2", AF.delta_kernel(delta_width, 2, dtype=torch.float64))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        coeffs = self.coefficients(waveform)
        width = self.config.delta_width
        d1 = AF.delta(coeffs, 1, width, _buffer(self.delta1, coeffs))
        d2 = AF.delta(coeffs, 2, width, _buffer(self.delta2, coeffs))
        return torch.stack([coeffs, d1, d2], dim=-3)

    @classmethod
    def from_config(cls, config: FeatureConfig, sample_rate: int) -> "FDMFCC":
        return cls(sample_rate, config.n_coeffs, config.frame_ms, config.hop_ms, config.n_mels, config.pre_emphasis,
                   config.top_db, config.delta_width, config.window)


class LPCC(nn.Module):
    """LPC cepstrum ``(..., 1, n_lpcc, frames)`` (the paper's feature ablation)."""

    kind = "lpcc"

    def __init__(self, sample_rate: int, n_lpcc: int = 20, lpc_order: int = 12, frame_ms: float = 20.0,
                 hop_ms: float = 20.0, pre_emphasis: float = 0.97, window: str = "hann") -> None:
        super().__init__()
        self.config = FeatureConfig(self.kind, n_coeffs=n_lpcc, lpc_order=lpc_order, frame_ms=frame_ms,
                                    hop_ms=hop_ms, pre_emphasis=pre_emphasis, window=window)
        self.sample_rate = sample_rate
        win_length, _, _ = AF.frame_params(sample_rate, frame_ms, hop_ms)
        self.register_buffer("window", AF.analysis_window(window, win_length, dtype=torch.float64))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        c = self.config
        out = AF.lpcc(waveform, self.sample_rate, n_lpcc=c.n_coeffs, lpc_order=c.lpc_order, frame_ms=c.frame_ms,
                      hop_ms=c.hop_ms, pre_emphasis_coef=c.pre_emphasis, window=_buffer(self.window, waveform))
        return out.unsqueeze(-3)

    @classmethod
    def from_config(cls, config: FeatureConfig, sample_rate: int) -> "LPCC":
        return cls(sample_rate, config.n_coeffs, config.lpc_order, config.frame_ms, config.hop_ms,
                   config.pre_emphasis, config.window)


FEATURE_MODULES: dict[str, type[nn.Module]] = {m.kind: m for m in (FDMFCC, MFCC, LPCC)}


def feature_module(config: FeatureConfig, sample_rate: int) -> nn.Module:
    """The module computing ``config``'s features at ``sample_rate`` (settings checked by the config itself)."""
    return FEATURE_MODULES[config.kind].from_config(config, sample_rate)


class FeatureExtractor(nn.Module):
    """Waveforms ``(N, T)`` at ``sample_rate`` -> features ``(N, C, coeffs, frames)`` as ``config`` describes."""

    def __init__(self, sample_rate: int, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.config = config or FeatureConfig()
        self.extract = feature_module(self.config, sample_rate)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        self.config.check(self.sample_rate, waveform.shape[-1])
        return self.extract(waveform)


class Delta(nn.Module):
    """``librosa.feature.delta`` along the last axis as a module."""

    def __init__(self, order: int = 1, width: int = 9) -> None:
        super().__init__()
        self.order, self.width = order, width

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return AF.delta(features, self.order, self.width)
