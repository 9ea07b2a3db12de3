"""One frozen description of a feature pipeline: it names the extractor, and it is the feature cache's key."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import torch

from ddfad_apps.features import functional as AF



@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings.  Defaults: 20 ms frames, 20 ms hop (see docs/reconstruction.md: halves the ConvNet's cost
    against a 10 ms hop at no measurable accuracy loss), 40 mel bands, 20 coefficients, pre-emphasis 0.97, 9-frame
    deltas."""

    kind: str = "fd_mfcc"
    n_coeffs: int = 20
    frame_ms: float = 20.0
    hop_ms: float = 20.0
    n_mels: int = 40
    pre_emphasis: float = 0.97
    delta_width: int = 9
    top_db: float | None = 80.0
    lpc_order: int = 12
    # Analysis window (periodic): Hann as librosa; 'hamming' keeps the frame edges (0.08 instead of 0), which
    # matters when frames do not overlap (docs/reconstruction.md, "Fidelity").
    window: str = "hann"

    def __post_init__(self) -> None:
        """Refuse settings the extractor cannot honour, instead of letting it quietly compute something else
        (e.g. the DCT of 40 mel bands has only 40 coefficients: ``n_coeffs=500`` used to give 40)."""
        from ddfad_apps.features.transforms import FEATURE_MODULES  # the registry of kinds (imports this module)

        if self.kind not in FEATURE_MODULES:
            raise ValueError(f"unknown feature kind {self.kind!r}; choose one of {tuple(FEATURE_MODULES)}")
        if self.window not in AF.WINDOWS:
            raise ValueError(f"unknown window {self.window!r}; choose one of {', '.join(AF.WINDOWS)}")
        if self.hop_ms <= 0 or self.frame_ms <= 0:
            raise ValueError("frame_ms and hop_ms must be positive")
        for name in ("n_coeffs", "n_mels", "lpc_order", "delta_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.pre_emphasis < 1.0:
            raise ValueError(f"pre_emphasis must be in [0, 1), got {self.pre_emphasis}")
        if self.top_db is not None and self.top_db <= 0:
            raise ValueError(f"top_db must be positive (or None for no floor), got {self.top_db}")
        if self.kind in ("fd_mfcc", "mfcc") and self.n_coeffs > self.n_mels:
            raise ValueError(
                f"{self.n_coeffs} cepstral coefficients requested but the DCT of {self.n_mels} mel bands has only "
                f"{self.n_mels}; use n_coeffs (--n-mfcc) <= {self.n_mels}"
            )
        if self.kind == "fd_mfcc" and (self.delta_width < 3 or self.delta_width % 2 == 0):
            raise ValueError(f"delta_width must be an odd integer >= 3, got {self.delta_width}")

    def check(self, sample_rate: int, num_samples: int) -> None:
        """Refuse settings that cannot be honoured at this sample rate and clip length (raises ``ValueError``).

        Caught here rather than by the extractor, which would round a frame or hop to 0 samples, leave mel bands
        without FFT bins (constant, meaningless coefficients; librosa only warns), truncate an LPC order longer
        than the frame, or fail on clips shorter than the delta window with a less helpful message.
        """
        win, hop, n_fft = AF.frame_params(sample_rate, self.frame_ms, self.hop_ms)
        if win < 2 or hop < 1:
            raise ValueError(
                f"frame_ms={self.frame_ms} / hop_ms={self.hop_ms} give a frame of {win} and a hop of {hop} samples at "
                f"{sample_rate} Hz; use longer frames"
            )
        if self.kind in ("fd_mfcc", "mfcc"):
            with warnings.catch_warnings():  # librosa warns about the empty bands this turns into an error
                warnings.simplefilter("ignore")
                fb = AF.mel_filterbank(sample_rate, n_fft, self.n_mels, dtype=torch.float64)
            empty = int((fb.sum(dim=1) == 0).sum())
            if empty:
                raise ValueError(
                    f"{self.n_mels} mel bands are too many for {n_fft // 2 + 1} FFT bins ({self.frame_ms} ms frames at "
                    f"{sample_rate} Hz): {empty} band(s) would be empty; use fewer mel bands or longer frames"
                )
        if self.kind == "lpcc" and self.lpc_order >= win:
            raise ValueError(f"lpc_order {self.lpc_order} needs frames longer than {self.lpc_order} samples; "
                             f"{self.frame_ms} ms at {sample_rate} Hz is {win}")
        frames = self.num_frames(num_samples, sample_rate)
        if self.kind == "fd_mfcc" and frames < self.delta_width:
            raise ValueError(
                f"clips of {num_samples} samples give {frames} frames, fewer than the {self.delta_width}-frame delta "
                "window; use longer clips (--duration), a shorter hop or a smaller delta_width"
            )

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
        """Waveforms ``(N, T)`` -> features ``(N, channels, n_coeffs, frames)``, by this kind's module
        (:data:`ddfad_apps.features.transforms.FEATURE_MODULES`)."""
        from ddfad_apps.features.transforms import feature_module

        self.check(sample_rate, waveform.shape[-1])
        return feature_module(self, sample_rate).to(waveform.device)(waveform)
