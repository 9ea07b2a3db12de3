"""Pure, batched torch functions for audio features: FD-MFCC, MFCC, their deltas, and LPCC.

Every function takes a batch (``(..., time)`` waveforms or ``(..., coeff, frames)`` features), runs on whatever
device its input lives on, and holds no state, so the ``nn.Module`` wrappers in
:mod:`ddfad_apps.features.transforms` stay thin and the distillation engine can call them inside autograd.

The MFCC chain mirrors ``librosa.feature.mfcc`` step by step (periodic Hann window, zero-padded centred frames,
Slaney mel filters, ``power_to_db`` with ``top_db``, orthonormal DCT-II) so that results can be checked against it,
and deltas mirror ``librosa.feature.delta`` (Savitzky-Golay, ``mode='interp'``).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F
from scipy.signal import savgol_coeffs


def pre_emphasis(waveform: torch.Tensor, coef: float = 0.97) -> torch.Tensor:
    """``y[t] = x[t] - coef * x[t-1]`` (``y[0] = x[0]``): lifts the high frequencies that speech energy hides."""
    if coef == 0.0:
        return waveform
    return torch.cat([waveform[..., :1], waveform[..., 1:] - coef * waveform[..., :-1]], dim=-1)


def frame_params(sample_rate: int, frame_ms: float, hop_ms: float) -> tuple[int, int, int]:
    """Window length, hop length (samples) and the FFT size (next power of two) for millisecond frame settings."""
    win_length = int(round(sample_rate * frame_ms / 1000.0))
    hop_length = int(round(sample_rate * hop_ms / 1000.0))
    n_fft = 1 << (win_length - 1).bit_length()
    return win_length, hop_length, n_fft


WINDOWS: tuple[str, ...] = ("hann", "hamming")


def analysis_window(name: str, win_length: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic ``name`` window (``'hann'`` or ``'hamming'``), computed in float64 and cast (so float32 and float64
    callers share its values).  Periodic, as librosa and ``torch.stft`` use for analysis; the features and the
    audio reconstruction must use the same one, so it is a feature setting (``FeatureConfig.window``)."""
    if name == "hann":
        window = torch.hann_window(win_length, periodic=True, dtype=torch.float64, device=device)
    elif name == "hamming":
        window = torch.hamming_window(win_length, periodic=True, dtype=torch.float64, device=device)
    else:
        raise ValueError(f"unknown window {name!r}; choose one of {', '.join(WINDOWS)}")
    return window.to(dtype)


def hann_window(win_length: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic Hann window (:func:`analysis_window`'s default)."""
    return analysis_window("hann", win_length, device, dtype)


def power_spectrogram(
    waveform: torch.Tensor, n_fft: int, hop_length: int, win_length: int, center: bool = True,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """``|STFT|^2`` with a periodic Hann window (or ``window``), shape ``(..., n_fft // 2 + 1, frames)``."""
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    if window is None:
        window = hann_window(win_length, flat.device, flat.dtype)
    spec = torch.stft(
        flat, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
        center=center, pad_mode="constant", return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()
    return power.reshape(*shape[:-1], *power.shape[-2:])


@functools.lru_cache(maxsize=32)
def _mel_fb_cpu(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    # Built in float64 (torchaudio's builder works in float32), so float64 callers get float64-accurate filters.
    from librosa.filters import mel  # imported here: librosa's import is slow and only this needs it

    fb = mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=False, norm="slaney",
             dtype=np.float64)
    return torch.from_numpy(fb)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised triangular filters ``(n_mels, n_fft // 2 + 1)`` (librosa's default)."""
    f_max = float(sample_rate) / 2 if f_max is None else float(f_max)
    # a copy, always: a caller that modifies its filters in place must not change the cached ones
    return _mel_fb_cpu(sample_rate, n_fft, n_mels, float(f_min), f_max).to(device=device, dtype=dtype, copy=True)


def power_to_db(power: torch.Tensor, amin: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """``10 log10(max(power, amin))``, floored at ``top_db`` below each clip's peak (as ``librosa.power_to_db``).

    The floor is per clip (the last two dimensions), so silence in one clip never depends on another clip.
    """
    db = 10.0 * torch.log10(power.clamp_min(amin))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


@functools.lru_cache(maxsize=32)
def _dct_cpu(n_mfcc: int, n_mels: int) -> torch.Tensor:
    # float64 for the same reason as the mel filters; rows are the DCT-II basis vectors, (n_mfcc, n_mels)
    return torch.from_numpy(scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].copy())


def dct_matrix(n_mfcc: int, n_mels: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``(n_mfcc, n_mels)``; its transpose is the inverse used for reconstruction."""
    return _dct_cpu(n_mfcc, n_mels).to(device=device, dtype=dtype, copy=True)  # a copy: see mel_filterbank


def log_mel_spectrogram(
    waveform: torch.Tensor, sample_rate: int, n_fft: int, hop_length: int, win_length: int,
    n_mels: int = 40, f_min: float = 0.0, f_max: float | None = None, top_db: float | None = 80.0,
    window: torch.Tensor | None = None, filterbank: torch.Tensor | None = None,
) -> torch.Tensor:
    """dB-scaled mel spectrogram ``(..., n_mels, frames)``; ``window`` / ``filterbank`` may be passed in
    precomputed (a module's buffers) instead of being built for the input's device and dtype."""
    power = power_spectrogram(waveform, n_fft, hop_length, win_length, window=window)
    fb = filterbank if filterbank is not None else mel_filterbank(
        sample_rate, n_fft, n_mels, f_min, f_max, device=power.device, dtype=power.dtype)
    return power_to_db(torch.matmul(fb, power), top_db=top_db)


def mfcc(
    waveform: torch.Tensor, sample_rate: int, n_mfcc: int = 20, n_fft: int = 256, hop_length: int = 160,
    win_length: int | None = None, n_mels: int = 40, f_min: float = 0.0, f_max: float | None = None,
    top_db: float | None = 80.0, window: torch.Tensor | None = None, filterbank: torch.Tensor | None = None,
    dct: torch.Tensor | None = None,
) -> torch.Tensor:
    """MFCC ``(..., n_mfcc, frames)``: power STFT -> mel -> dB -> DCT-II (ortho), as ``librosa.feature.mfcc``."""
    win_length = n_fft if win_length is None else win_length
    log_mel = log_mel_spectrogram(waveform, sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, top_db,
                                  window, filterbank)
    dct = dct if dct is not None else dct_matrix(n_mfcc, n_mels, log_mel.device, log_mel.dtype)
    return torch.matmul(dct, log_mel)


@functools.lru_cache(maxsize=16)
def _savgol_kernel(width: int, order: int) -> torch.Tensor:
    return torch.tensor(savgol_coeffs(width, polyorder=order, deriv=order, use="dot"), dtype=torch.float64)


def delta_kernel(width: int, order: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The Savitzky-Golay derivative filter ``(width,)`` that :func:`delta` convolves with."""
    if width < 3 or width % 2 == 0:
        raise ValueError(f"delta width must be an odd integer >= 3, got {width}")
    return _savgol_kernel(width, order).to(device=device, dtype=dtype, copy=True)  # a copy: see mel_filterbank


def delta(features: torch.Tensor, order: int = 1, width: int = 9, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """Local derivative of ``order`` along the last (time) axis, as ``librosa.feature.delta``.

    A Savitzky-Golay filter of polynomial order ``order``: inside the clip a convolution; at the edges librosa's
    ``mode='interp'`` fits one polynomial to the first/last ``width`` frames, whose ``order``-th derivative is a
    constant, so the edge values equal the first/last interior value (replicate padding of the valid part).
    """
    if width < 3 or width % 2 == 0:
        raise ValueError(f"delta width must be an odd integer >= 3, got {width}")
    frames = features.shape[-1]
    if frames < width:
        raise ValueError(f"delta needs at least width={width} frames, got {frames}; use a longer clip or smaller width")
    if kernel is None:
        kernel = delta_kernel(width, order, features.device, features.dtype)
    flat = features.reshape(-1, 1, frames)
    valid = F.conv1d(flat, kernel.view(1, 1, -1))
    out = F.pad(valid, (width // 2, width // 2), mode="replicate")
    return out.reshape(features.shape)


def fd_mfcc(
    waveform: torch.Tensor, sample_rate: int, n_mfcc: int = 20, frame_ms: float = 20.0, hop_ms: float = 20.0,
    n_mels: int = 40, pre_emphasis_coef: float = 0.97, delta_width: int = 9, top_db: float | None = 80.0,
    window: torch.Tensor | None = None, filterbank: torch.Tensor | None = None, dct: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused-difference MFCC: ``stack([mfcc, delta1, delta2])`` of shape ``(..., 3, n_mfcc, frames)``.

    The three views are stacked as image channels so an ordinary 2-D ConvNet sees static and dynamic cues at once.
    """
    win_length, hop_length, n_fft = frame_params(sample_rate, frame_ms, hop_ms)
    coeffs = mfcc(
        pre_emphasis(waveform, pre_emphasis_coef), sample_rate, n_mfcc=n_mfcc, n_fft=n_fft,
        hop_length=hop_length, win_length=win_length, n_mels=n_mels, top_db=top_db, window=window,
        filterbank=filterbank, dct=dct,
    )
    return torch.stack([coeffs, delta(coeffs, 1, delta_width), delta(coeffs, 2, delta_width)], dim=-3)


def _levinson(autocorr: torch.Tensor, order: int) -> torch.Tensor:
    """Levinson-Durbin recursion, batched: LPC coefficients ``a[1..order]`` of ``x[t] ~ -sum a_k x[t-k]``."""
    r = autocorr
    a = torch.zeros(*r.shape[:-1], order + 1, dtype=r.dtype, device=r.device)
    a[..., 0] = 1.0
    err = r[..., 0].clamp_min(1e-10)
    for i in range(1, order + 1):
        acc = (a[..., :i] * r[..., 1 : i + 1].flip(-1)).sum(-1)
        k = -acc / err
        prev = a.clone()
        a[..., 1 : i + 1] = prev[..., 1 : i + 1] + k.unsqueeze(-1) * prev[..., :i].flip(-1)
        a[..., i] = k
        err = (err * (1.0 - k * k)).clamp_min(1e-10)
    return a[..., 1:]


def lpcc(
    waveform: torch.Tensor, sample_rate: int, n_lpcc: int = 20, lpc_order: int = 12, frame_ms: float = 20.0,
    hop_ms: float = 20.0, pre_emphasis_coef: float = 0.97, window: torch.Tensor | None = None,
) -> torch.Tensor:
    """Linear-prediction cepstral coefficients ``(..., n_lpcc, frames)`` (the paper's feature ablation).

    Frames are Hann-windowed; LPC by autocorrelation + Levinson-Durbin; cepstrum by the standard recursion
    ``c_n = -a_n - sum_{k<n} (k/n) c_k a_{n-k}`` (with ``a_n = 0`` beyond the LPC order).
    """
    win_length, hop_length, _ = frame_params(sample_rate, frame_ms, hop_ms)
    x = pre_emphasis(waveform, pre_emphasis_coef)
    x = F.pad(x.reshape(-1, 1, x.shape[-1]), (win_length // 2, win_length // 2)).squeeze(1)
    frames = x.unfold(-1, win_length, hop_length)  # (B, frames, win)
    if window is None:
        window = hann_window(win_length, x.device, x.dtype)
    frames = frames * window
    n = 1 << (2 * win_length - 1).bit_length()
    spec = torch.fft.rfft(frames, n=n)
    autocorr = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=n)[..., : lpc_order + 1]
    autocorr[..., 0] = autocorr[..., 0] * (1.0 + 1e-9) + 1e-10  # white-noise floor keeps silent frames stable
    a = _levinson(autocorr, lpc_order)
    ceps: list[torch.Tensor] = []
    for i in range(1, n_lpcc + 1):
        c = -a[..., i - 1] if i <= lpc_order else torch.zeros_like(a[..., 0])
        for k in range(max(1, i - lpc_order), i):
            c = c - (k / i) * ceps[k - 1] * a[..., i - k - 1]
        ceps.append(c)
    out = torch.stack(ceps, dim=-1).transpose(-1, -2)  # (B, n_lpcc, frames)
    return out.reshape(*waveform.shape[:-1], n_lpcc, out.shape[-1])
