"""Noise robustness as in the paper (Fig. 7): Gaussian noise added to the *waveforms* of a distilled set.

Each clip of the set is reconstructed as audio exactly as its WAV export is (fast Griffin-Lim, scaled to a peak of
0.9 full scale), Gaussian noise of standard deviation ``std`` (full-scale units; variance ``std**2``) is added,
features are extracted again and normalised with the training statistics, and the noisy set goes through the
evaluation protocol (:func:`~ddfad_apps.evidence.protocol.evaluate_set`), tested on the clean test split.  Level 0
is the clean reconstruction (the audio round trip).  Each level reports variance and signal-to-noise ratio.
The older feature-space variant (noise on the normalised features) stays in ``EvalSettings.noise_std``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.evidence.protocol import Carved, EvalProtocol, SetEvaluation, evaluate_set
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.reconstruct.functional import fd_mfcc_to_audio
from ddfad_apps.reconstruct.writer import MOMENTUM, REGULARIZATION

WAV_PEAK = 0.9  # the level of the set's WAV export (``write_audio_dataset``'s default peak)


def _recorded(syn: SyntheticSet, key: str, given: Any) -> Any:
    value = given if given is not None else syn.meta.get(key)
    if value is None:
        raise ValueError(f"the distilled set records no {key!r} (meta) and none was given: pass {key}=...")
    return value


def reconstruct_waves(syn: SyntheticSet, sample_rate: int | None = None, duration: float | None = None,
                      n_iter: int = 32, seed: int = 0, peak: float = WAV_PEAK) -> torch.Tensor:
    """``(N, T)`` waveforms of the set as its WAV export holds them (each clip scaled to ``peak``)."""
    if syn.stats is None:
        raise ValueError("the distilled set carries no normalisation statistics (SyntheticSet.stats is None), so "
                         "its features cannot be turned into audio")
    sample_rate = int(_recorded(syn, "sample_rate", sample_rate))
    length = round(sample_rate * float(_recorded(syn, "duration", duration)))
    raw = syn.stats.invert(syn.features.detach().cpu().float())
    waves = fd_mfcc_to_audio(raw, sample_rate, syn.feature_config, n_iter, momentum=MOMENTUM,
                             regularization=REGULARIZATION, generator=torch.Generator().manual_seed(seed),
                             length=length)
    peaks = waves.abs().amax(dim=-1, keepdim=True)
    return torch.where(peaks > 0, waves * (peak / peaks.clamp_min(1e-30)), waves)


def snr_db(clean: torch.Tensor, std: float) -> float:
    """Mean over clips of 10 log10(clip power / noise variance); +inf without noise."""
    if std <= 0:
        return math.inf
    power = clean.pow(2).mean(dim=-1)
    return float((10 * torch.log10(power / std**2)).mean())


def noisy_set(syn: SyntheticSet, clean: torch.Tensor, std: float, seed: int = 0,
              sample_rate: int | None = None) -> SyntheticSet:
    """``syn`` with features extracted from ``clean + N(0, std^2)`` and normalised like the training split; it
    keeps the set's learned learning rate and labels, so the protocol treats it as the same kind of set."""
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    sample_rate = int(_recorded(syn, "sample_rate", sample_rate))
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * std
    feats = syn.stats.apply(syn.feature_config.extract(clean + noise, sample_rate))
    meta = {**syn.meta, "waveform_noise": {"std": std, "variance": std**2, "seed": seed}}
    return SyntheticSet(feats, syn.labels.clone(), list(syn.classes), syn.method, syn.lr, syn.stats, meta)


@dataclass
class NoiseLevel:
    """One level of the noise curve and the protocol's evaluation of the set at that level."""

    std: float
    snr_db: float
    evaluation: SetEvaluation
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def variance(self) -> float:
        return self.std**2

    def as_dict(self) -> dict[str, Any]:
        return {"std": self.std, "variance": self.variance, "snr_db": None if math.isinf(self.snr_db) else
                self.snr_db, **self.extra, "evaluation": self.evaluation.as_dict()}


def waveform_noise_curve(
    syn: SyntheticSet, carved: Carved, test: FeatureSet, protocol: EvalProtocol, stds: Sequence[float],
    seeds: int | Sequence[int] = 3, device: torch.device | str = "cpu", n_iter: int = 32, noise_seed: int = 0,
    sample_rate: int | None = None, duration: float | None = None,
) -> list[NoiseLevel]:
    """Accuracy of networks trained on the set's noisy audio, one :class:`NoiseLevel` per ``stds`` entry (0 is
    the clean reconstruction); every level goes through the same protocol on the clean test split."""
    clean = reconstruct_waves(syn, sample_rate, duration, n_iter)
    levels = []
    for std in stds:
        noisy = noisy_set(syn, clean, float(std), noise_seed, sample_rate)
        ev = evaluate_set(noisy, carved, test, protocol, seeds, device, name=f"{syn.method} + noise {std:g}")
        levels.append(NoiseLevel(float(std), snr_db(clean, float(std)), ev))
    return levels
