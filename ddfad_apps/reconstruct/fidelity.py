"""How faithful a reconstruction is: spectral distances to the original, peak/clipping, and class round trips.

Pure functions on batches ``(N, T)`` (or a single ``(T,)`` clip), used by ``scripts/bench_fidelity.py``, the WAV
export and the listening page.  Distances are measured on one fixed, well-overlapped STFT (about 32 ms Hann
frames, 75 % overlap) rather than on the features' own framing, so that framings can be compared with each other.

Defined values where a ratio would divide by zero (silence):

* :func:`spectral_convergence_to` of silence against silence is 0; of silence against anything louder it is
  ``inf`` (any error is infinitely large relative to nothing).
* :func:`log_spectral_distance` floors every power at 80 dB below the reference's peak and at ``amin``, so
  silence against silence is 0 dB and silence against sound is finite.
* :func:`peak_stats` of silence: peak 0, clip fraction 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.features.normalize import FeatureStats
from ddfad_apps.reconstruct.functional import SYNTHESIS_OVERLAP, _stft, fd_mfcc_to_audio

PCM16_STEP = 2.0**-15  # one 16-bit LSB: a sample written at full scale reads back as 1 - 2**-15


def measurement_frames(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` of the measurement STFT: the power of two nearest above 32 ms, hop a quarter of it."""
    n_fft = 1 << (int(0.032 * sample_rate) - 1).bit_length()
    return n_fft, n_fft // 4


def _batch(wave: torch.Tensor, name: str) -> torch.Tensor:
    wave = torch.as_tensor(wave)
    if wave.dim() not in (1, 2):
        raise ValueError(f"{name} must be a clip (T,) or a batch (N, T), got shape {tuple(wave.shape)}")
    return wave.reshape(-1, wave.shape[-1]).to(torch.float64)


def _pair(reference: torch.Tensor, estimate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    ref, est = _batch(reference, "reference"), _batch(estimate, "estimate")
    if ref.shape != est.shape:
        raise ValueError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must have the same shape "
                         "(same number of clips, same length)")
    return ref, est, tuple(torch.as_tensor(reference).shape[:-1])


def _magnitudes(ref: torch.Tensor, est: torch.Tensor, sample_rate: int, n_fft: int | None):
    n_fft, hop = measurement_frames(sample_rate) if n_fft is None else (n_fft, n_fft // 4)
    return _stft(ref, n_fft, hop, n_fft).abs(), _stft(est, n_fft, hop, n_fft).abs()


def spectral_convergence_to(
    reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int, n_fft: int | None = None
) -> torch.Tensor:
    """``|| |S_ref| - |S_est| ||_F / || |S_ref| ||_F`` per clip (0 = identical magnitudes; phase is ignored).

    Level-sensitive on purpose: a reconstruction at the wrong loudness is not faithful.  Silence against silence
    is 0, silence against sound ``inf``.
    """
    ref, est, lead = _pair(reference, estimate)
    s_ref, s_est = _magnitudes(ref, est, sample_rate, n_fft)
    err = (s_ref - s_est).flatten(1).norm(dim=1)
    norm = s_ref.flatten(1).norm(dim=1)
    out = torch.where(norm > 0, err / norm.clamp_min(torch.finfo(norm.dtype).tiny),
                      torch.where(err > 0, torch.full_like(err, float("inf")), torch.zeros_like(err)))
    return out.reshape(lead).float()


def log_spectral_distance(
    reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int, n_fft: int | None = None,
    top_db: float | None = 80.0, amin: float = 1e-10,
) -> torch.Tensor:
    """Log-spectral distance in dB per clip: ``mean_frames sqrt(mean_bins (10 log10(P_ref / P_est))^2)``.

    Both powers are floored at ``top_db`` below the reference's peak (the features' own 80 dB range: what lies
    below it cannot come back from FD-MFCC, and the digital silence that pads short clips would otherwise dominate)
    and at ``amin``, which keeps silence against silence at exactly 0 dB.
    """
    ref, est, lead = _pair(reference, estimate)
    s_ref, s_est = _magnitudes(ref, est, sample_rate, n_fft)
    p_ref, p_est = s_ref.square(), s_est.square()
    floor = torch.full((len(ref), 1, 1), amin, dtype=p_ref.dtype)
    if top_db is not None:
        floor = torch.maximum(floor, p_ref.amax(dim=(1, 2), keepdim=True) * 10.0 ** (-top_db / 10.0))
    db_ref = 10.0 * torch.log10(torch.maximum(p_ref, floor))
    db_est = 10.0 * torch.log10(torch.maximum(p_est, floor))
    per_frame = (db_ref - db_est).square().mean(dim=1).sqrt()  # (N, frames)
    return per_frame.mean(dim=1).reshape(lead).float()


def frame_rate_line(wave: torch.Tensor, sample_rate: int, rate_hz: float, half_width: int = 12) -> torch.Tensor:
    """How far the power envelope's line at ``rate_hz`` stands above its neighbours, in dB, per clip.

    Griffin-Lim from frames that do not overlap modulates the output at the frame rate (1 / hop: 50 Hz for a
    20 ms hop), which is heard as a buzz and seen as vertical stripes in a spectrogram.  The spectrum of ``x^2``
    shows it as a line at ``rate_hz``; this is that line's peak over the median of the bins ``3..half_width`` away
    (about 0 dB when there is no line; silence gives 0).  Compare a reconstruction with its original: speech has
    its own envelope lines (the pitch), so only the difference means something.
    """
    x = _batch(wave, "wave")
    n = x.shape[-1]
    env = x.square()
    spec = torch.fft.rfft(env - env.mean(dim=-1, keepdim=True), dim=-1).abs()
    k = round(rate_hz * n / sample_rate)
    if k - half_width < 1 or k + half_width >= spec.shape[-1]:
        raise ValueError(f"{rate_hz} Hz is too close to 0 or to {sample_rate / 2} Hz for a {n}-sample clip")
    line = spec[:, k - 1 : k + 2].amax(dim=-1)
    near = torch.cat([spec[:, k - half_width : k - 2], spec[:, k + 3 : k + half_width + 1]], dim=-1)
    floor = near.median(dim=-1).values
    tiny = torch.finfo(spec.dtype).tiny
    out = torch.where(floor > 0, 20 * torch.log10(line.clamp_min(tiny) / floor.clamp_min(tiny)), torch.zeros_like(line))
    return out.reshape(torch.as_tensor(wave).shape[:-1]).float()


@dataclass
class PeakStats:
    """Per clip: the absolute peak and the fraction of samples at or over full scale."""

    peak: torch.Tensor
    clip_fraction: torch.Tensor

    @property
    def clipping(self) -> torch.Tensor:
        """Which clips have at least one sample at or over full scale."""
        return self.clip_fraction > 0


def peak_stats(wave: torch.Tensor, full_scale: float = 1.0, tolerance: float = PCM16_STEP) -> PeakStats:
    """Peak ``max |x|`` and the fraction of samples with ``|x| >= full_scale - tolerance``, per clip.

    The default tolerance is one 16-bit step, because a sample clipped at full scale in a PCM_16 file reads back as
    ``1 - 2**-15``, not 1.  Silence has peak 0 and clip fraction 0.
    """
    if full_scale <= 0 or not 0 <= tolerance < full_scale:
        raise ValueError(f"need full_scale > 0 and 0 <= tolerance < full_scale, got {full_scale}, {tolerance}")
    x = torch.as_tensor(wave)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"wave must have at least one sample, got shape {tuple(x.shape)}")
    mag = x.detach().abs().to(torch.float64)
    peak = mag.amax(dim=-1)
    fraction = (mag >= full_scale - tolerance).to(torch.float64).mean(dim=-1)
    return PeakStats(peak.float(), fraction.float())


@torch.no_grad()
def audio_accuracy(
    model: nn.Module, waves: torch.Tensor, labels: torch.Tensor, sample_rate: int, stats: FeatureStats,
    config: FeatureConfig | None = None, batch_size: int = 256,
) -> float:
    """Accuracy of ``model`` (trained on normalised features) on audio clips: does each sound like its class?

    Clips are featurised with ``config`` (its window and framing), normalised with the training ``stats`` and
    classified.  Used on reconstructed real clips (the round trip) and on a distilled set's reconstructions.
    """
    from ddfad_apps.training.loops import predict

    config = config or FeatureConfig()
    waves, labels = torch.as_tensor(waves), torch.as_tensor(labels).long().cpu()
    if waves.dim() != 2 or len(waves) != len(labels):
        raise ValueError(f"need waves (N, T) and N labels, got {tuple(waves.shape)} and {tuple(labels.shape)}")
    if len(waves) == 0:
        raise ValueError("no clips to classify")
    feats = torch.cat([stats.apply(config.extract(waves[i : i + batch_size], sample_rate))
                       for i in range(0, len(waves), batch_size)])
    return float((predict(model, feats, batch_size) == labels).float().mean())


@dataclass
class RoundTrip:
    """Real clips -> FD-MFCC -> audio -> FD-MFCC, classified by one network, against its accuracy on the originals."""

    original_accuracy: float
    roundtrip_accuracy: float
    reconstructed: torch.Tensor = field(repr=False)  # (N, T), at the level the features imply (not normalised)

    @property
    def drop(self) -> float:
        """Accuracy points lost by the trip through audio (positive = worse)."""
        return self.original_accuracy - self.roundtrip_accuracy


def roundtrip_accuracy(
    model: nn.Module, waves: torch.Tensor, labels: torch.Tensor, sample_rate: int, stats: FeatureStats,
    config: FeatureConfig | None = None, *, n_iter: int = 32, seed: int = 0, batch_size: int = 256,
    overlap: int = SYNTHESIS_OVERLAP,
) -> RoundTrip:
    """Classify real clips and their reconstructions from FD-MFCC with the same network; ``config`` is the
    framing (window, hop) of both the features and the Griffin-Lim synthesis."""
    config = config or FeatureConfig()
    waves = torch.as_tensor(waves)
    generator = torch.Generator(device=waves.device).manual_seed(seed)
    recon = torch.cat([
        fd_mfcc_to_audio(config.extract(waves[i : i + batch_size], sample_rate), sample_rate, config, n_iter,
                         generator=generator, length=waves.shape[-1], overlap=overlap)
        for i in range(0, len(waves), batch_size)
    ])
    before = audio_accuracy(model, waves, labels, sample_rate, stats, config, batch_size)
    after = audio_accuracy(model, recon, labels, sample_rate, stats, config, batch_size)
    return RoundTrip(before, after, recon)
