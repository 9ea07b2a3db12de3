"""Pure, batched torch functions that turn (distilled) FD-MFCC back into audio.

The chain undoes :func:`ddfad_apps.features.functional.fd_mfcc` step by step, as
``librosa.feature.inverse.mfcc_to_audio`` does for plain MFCC, but on a whole batch at once and on any device:

1. inverse orthonormal DCT (the transpose of :func:`~ddfad_apps.features.functional.dct_matrix`; the dropped
   high-order coefficients count as zero) -> mel dB;
2. dB -> mel power;
3. mel power -> STFT magnitude by non-negative least squares against the same Slaney filterbank;
4. fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99 as librosa) -> pre-emphasised waveform;
5. de-emphasis (the IIR inverse of the pre-emphasis FIR).

Our features are dB-scaled (``power_to_db``, ``ref=1``) like librosa's MFCC, so each stage has a librosa twin
that the tests compare against.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ddfad_apps.features import functional as AF
from ddfad_apps.features.config import FeatureConfig

GL_INITS = ("random", "zeros")
SYNTHESIS_OVERLAP = 4  # synthesis frames per analysis hop in fd_mfcc_to_audio (see there)
WINDOWS = AF.WINDOWS


def mfcc_to_mel_db(mfcc: torch.Tensor, n_mels: int) -> torch.Tensor:
    """MFCC ``(..., n_mfcc, frames)`` -> mel dB ``(..., n_mels, frames)``.

    The ortho DCT-II is orthogonal, so its inverse is the transpose; keeping only ``n_mfcc`` rows means the
    missing coefficients are taken as zero (as ``scipy.fft.idct(..., n=n_mels)`` in librosa's ``mfcc_to_mel``).
    """
    n_mfcc = mfcc.shape[-2]
    if n_mfcc > n_mels:
        raise ValueError(f"cannot invert {n_mfcc} coefficients onto only n_mels={n_mels} bands")
    basis = AF.dct_matrix(n_mfcc, n_mels, device=mfcc.device, dtype=mfcc.dtype)
    return torch.matmul(basis.T, mfcc)


def db_to_power(db: torch.Tensor, ref: float = 1.0) -> torch.Tensor:
    """``ref * 10 ** (db / 10)``: the inverse of ``power_to_db`` above its ``top_db`` floor."""
    return ref * torch.pow(10.0, db * 0.1)


@functools.lru_cache(maxsize=16)
def _nnls_operators(sample_rate: int, n_fft: int, n_mels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pseudo-inverse, gradient-step matrix ``I - M^T M / L`` and ``M^T / L`` (``L = ||M||_2^2``), once, in float64."""
    basis = AF.mel_filterbank(sample_rate, n_fft, n_mels, dtype=torch.float64)
    pinv = torch.linalg.pinv(basis)
    step = basis.T / torch.linalg.matrix_norm(basis, ord=2) ** 2
    return pinv, torch.eye(basis.shape[1], dtype=torch.float64) - step @ basis, step


def mel_to_stft_magnitude(
    mel_power: torch.Tensor, sample_rate: int, n_fft: int, n_iter: int = 50, power: float = 2.0,
) -> torch.Tensor:
    """Mel power ``(..., n_mels, frames)`` -> STFT magnitude ``(..., n_fft // 2 + 1, frames)``, ``>= 0``.

    Solves ``min_{X >= 0} ||M X - mel||^2`` per frame (``M`` the Slaney filterbank), then returns ``X ** (1/power)``,
    as ``librosa.feature.inverse.mel_to_stft``.  Same start as librosa (the pseudo-inverse clamped at 0), then
    ``n_iter`` steps of accelerated projected gradient (FISTA, step ``1 / ||M||_2^2``) instead of scipy's L-BFGS-B:
    every frame of every clip is one column of a single matrix, so a step is one GEMM, on CPU or GPU.  Frames are
    independent and the problem is linear, so the progress per step does not depend on loudness.  (librosa's
    L-BFGS-B scales its objective by ``1 / size``; on quiet audio such as FSDD it stops at the clamped
    pseudo-inverse, whose mel residual is 1-3 %, where 50 steps here go below 1e-4.)  ``n_iter=0`` returns that
    clamped pseudo-inverse.
    """
    *lead, n_mels, frames = mel_power.shape
    pinv, descent, step = (
        op.to(device=mel_power.device, dtype=mel_power.dtype) for op in _nnls_operators(sample_rate, n_fft, n_mels)
    )
    cols = mel_power.reshape(-1, n_mels, frames).transpose(0, 1).reshape(n_mels, -1)  # (n_mels, clips * frames)
    x = torch.matmul(pinv, cols).clamp_min_(0.0)
    if n_iter > 0:
        target = torch.matmul(step, cols)
        y, t = x, 1.0
        for _ in range(n_iter):
            x_next = torch.addmm(target, descent, y).clamp_min_(0.0)  # projected gradient step from y
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y = torch.lerp(x_next, x, -(t - 1.0) / t_next)  # x_next + (t - 1) / t_next * (x_next - x)
            x, t = x_next, t_next
    bins = x.shape[0]
    x = x.reshape(bins, -1, frames).transpose(0, 1)  # (clips, bins, frames)
    return x.pow(1.0 / power).reshape(*lead, bins, frames)


@functools.lru_cache(maxsize=32)
def _ola_operators(
    n_fft: int, hop_length: int, win_length: int, frames: int, regularization: float, window_name: str = "hann"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Periodic ``window_name`` window zero-padded to ``n_fft`` (centred, as torch.stft and librosa), ``1 / envelope``.

    With ``regularization > 0`` it is ``1 / (envelope + regularization * max(envelope))`` instead.  It covers the
    whole overlap-added buffer and is zero in the ``n_fft // 2`` margins that ``center=True`` trims, so that the
    buffer can be re-analysed as it is (the margins are the STFT's zero padding).
    """
    if win_length > n_fft:
        raise ValueError(f"win_length={win_length} exceeds n_fft={n_fft}")
    window = AF.analysis_window(window_name, win_length, dtype=torch.float64)
    left = (n_fft - win_length) // 2
    window = F.pad(window, (left, n_fft - win_length - left))
    full = n_fft + hop_length * (frames - 1)
    envelope = _overlap_add(window.square()[None, None, :].expand(1, frames, n_fft), hop_length, full)[0]
    if regularization > 0:
        inverse = 1.0 / (envelope + regularization * float(envelope.max()))
    else:
        tiny = torch.finfo(torch.float32).tiny
        inverse = torch.where(envelope > tiny, 1.0 / envelope.clamp_min(tiny), torch.zeros(()))
    inverse[: n_fft // 2] = 0.0
    inverse[full - n_fft // 2 :] = 0.0
    return window, inverse


def _overlap_add(chunks: torch.Tensor, hop_length: int, full: int) -> torch.Tensor:
    """``(B, frames, n_fft)`` -> ``(B, full)``, frame ``t`` added at ``t * hop_length``."""
    n_fft = chunks.shape[-1]
    out = F.fold(chunks.transpose(1, 2), output_size=(1, full), kernel_size=(1, n_fft), stride=(1, hop_length))
    return out.reshape(chunks.shape[0], full)


def _synthesise(coeffs: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, inverse: torch.Tensor):
    """Least-squares ISTFT of ``(B, frames, bins)`` into the padded buffer ``(B, n_fft + hop * (frames - 1))``."""
    chunks = torch.fft.irfft(coeffs, n=n_fft, dim=-1).mul_(window)
    return _overlap_add(chunks, hop_length, inverse.shape[0]).mul_(inverse)


def _analyse(buffer: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """STFT ``(B, frames, bins)`` of a padded buffer: equals ``torch.stft(center=True, pad_mode='constant')``."""
    return torch.fft.rfft(buffer.unfold(-1, n_fft, hop_length) * window, dim=-1)


def _operators_for(
    n_fft: int, hop_length: int, win_length: int, frames: int, regularization: float, like: torch.Tensor,
    window_name: str = "hann",
) -> tuple[torch.Tensor, torch.Tensor]:
    window, inverse = _ola_operators(n_fft, hop_length, win_length, frames, float(regularization), window_name)
    real = like.real.dtype if like.is_complex() else like.dtype
    return window.to(device=like.device, dtype=real), inverse.to(device=like.device, dtype=real)


def _trim(buffer: torch.Tensor, n_fft: int, length: int | None) -> torch.Tensor:
    start = n_fft // 2
    natural = buffer.shape[-1] - 2 * start
    length = natural if length is None else length
    out = buffer[:, start : start + min(length, natural)]
    return F.pad(out, (0, length - out.shape[-1])) if out.shape[-1] < length else out


def _stft(wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int, window_name: str = "hann") -> torch.Tensor:
    window = AF.analysis_window(window_name, win_length, wave.device, wave.dtype)
    return torch.stft(
        wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=True,
        pad_mode="constant", return_complex=True,
    )


def istft(
    spec: torch.Tensor, n_fft: int, hop_length: int, win_length: int, length: int | None = None,
    regularization: float = 0.0, window: str = "hann",
) -> torch.Tensor:
    """Least-squares inverse STFT ``(..., n_fft // 2 + 1, frames)`` -> ``(..., T)`` (periodic Hann, centred).

    Not ``torch.istft``: that refuses any window whose overlap-add envelope touches zero, and our default frames
    (20 ms window, 20 ms hop) do exactly that - the periodic Hann starts with a 0 and the frames do not overlap.
    Like ``librosa.istft`` we divide by the envelope only where it is non-zero (the one unobserved sample per frame
    stays 0).  ``regularization > 0`` solves the Tikhonov-regularised least squares instead, i.e. divides by
    ``envelope + regularization * max(envelope)``: samples that the analysis barely sees (window tails without
    overlap) are then no longer blown up by ``1 / w(n)^2``.
    """
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, *spec.shape[-2:]).transpose(-1, -2)
    win, inverse = _operators_for(n_fft, hop_length, win_length, flat.shape[1], regularization, spec, window)
    wave = _trim(_synthesise(flat, n_fft, hop_length, win, inverse), n_fft, length)
    return wave.reshape(*lead, wave.shape[-1])


def griffin_lim(
    magnitude: torch.Tensor, n_fft: int, hop_length: int, win_length: int, n_iter: int = 32,
    momentum: float = 0.99, init: str = "random", generator: torch.Generator | None = None,
    length: int | None = None, regularization: float = 0.0, window: str = "hann",
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin, Balazs & Soendergaard 2013) on a batch ``(..., n_fft // 2 + 1, frames)``.

    Same iteration as ``librosa.griffinlim``: ``c_n = P(c_{n-1}) + momentum * (P(c_{n-1}) - P(c_{n-2}))`` with
    ``P`` = STFT of ISTFT, then the phase of ``c_n`` is kept and the target magnitude imposed.  ``init='zeros'`` is
    zero phase (librosa's ``init=None``); ``'random'`` draws uniform phases from ``generator``.  The loop keeps the
    overlap-added buffer with its zero margins and re-analyses it directly, which is exactly the
    ``stft(istft(.), center=True)`` round trip with no pad/trim copies.

    ``regularization=0`` is librosa's plain least-squares synthesis.  With frames that do not overlap (our 20 ms
    window and hop) that synthesis divides by ``w(n)^2 ~ 1e-7`` at the frame edges, and Griffin-Lim learns to park
    energy there: the STFT is consistent, yet the waveform is a train of clicks hundreds of times louder than the
    speech (librosa's output too).  A small ``regularization`` (1e-2; see :func:`istft`) in every synthesis keeps
    those samples bounded, at a small cost in spectral convergence.

    Returns ``(..., length)``, ``length`` defaulting to ``hop_length * (frames - 1)``.
    """
    if init not in GL_INITS:
        raise ValueError(f"init must be one of {GL_INITS}, got {init!r}")
    if momentum < 0:
        raise ValueError(f"momentum must be >= 0, got {momentum}")
    lead = magnitude.shape[:-2]
    mag = magnitude.reshape(-1, *magnitude.shape[-2:])
    if init == "random":
        draw_on = mag.device if generator is None else generator.device
        phase = torch.rand(mag.shape, generator=generator, dtype=mag.dtype, device=draw_on).to(mag.device)
        coeffs = torch.polar(mag, phase * (2.0 * math.pi))
    else:
        coeffs = torch.complex(mag, torch.zeros_like(mag))
    mag = mag.transpose(-1, -2).contiguous()  # (B, frames, bins): rfft's own layout, no transposes in the loop
    coeffs = coeffs.transpose(-1, -2).contiguous()
    frames = mag.shape[1]
    window, inverse = _operators_for(n_fft, hop_length, win_length, frames, regularization, mag, window)
    eps = torch.finfo(mag.dtype).tiny
    beta = momentum / (1.0 + momentum)
    previous: torch.Tensor | None = None
    for _ in range(n_iter):
        rebuilt = _analyse(_synthesise(coeffs, n_fft, hop_length, window, inverse), n_fft, hop_length, window)
        coeffs = rebuilt if previous is None else torch.add(rebuilt, previous, alpha=-beta)
        parts = torch.view_as_real(coeffs)
        scale = torch.linalg.vector_norm(parts, dim=-1).add_(eps).reciprocal_().mul_(mag)
        if previous is None:
            coeffs = coeffs * scale  # rebuilt itself is kept as ``previous``: do not overwrite it
        else:
            parts.mul_(scale.unsqueeze(-1))
        previous = rebuilt
    wave = _trim(_synthesise(coeffs, n_fft, hop_length, window, inverse), n_fft, length)
    return wave.reshape(*lead, wave.shape[-1])


def spectral_convergence(
    magnitude: torch.Tensor, wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int, window: str = "hann",
) -> torch.Tensor:
    """``||S - |STFT(y)||| / ||S||`` per clip: how consistent Griffin-Lim's answer is with its target magnitude."""
    lead = wave.shape[:-1]
    rebuilt = _stft(wave.reshape(-1, wave.shape[-1]), n_fft, hop_length, win_length, window).abs()
    rebuilt = rebuilt.reshape(*lead, *rebuilt.shape[-2:])
    frames = min(rebuilt.shape[-1], magnitude.shape[-1])
    err = (magnitude[..., :frames] - rebuilt[..., :frames]).flatten(-2).norm(dim=-1)
    return err / magnitude.flatten(-2).norm(dim=-1).clamp_min(torch.finfo(magnitude.dtype).tiny)


def de_emphasis(wave: torch.Tensor, coef: float = 0.97) -> torch.Tensor:
    """Inverse of :func:`~ddfad_apps.features.functional.pre_emphasis`: ``y[t] = x[t] + coef * y[t-1]``.

    The recursion is solved exactly in blocks, without a time loop: inside a block of ``L`` samples
    ``y = T x + coef^(i+1) * carry`` (``T`` lower-triangular Toeplitz of ``coef^(i-j)``), and the carries across
    blocks follow the same recursion with ``coef^L``, solved by one more triangular matmul.  Only non-negative
    powers of ``coef`` appear, so it stays stable for long clips (a plain cumulative sum of ``coef^-t`` overflows).
    """
    if coef == 0.0:
        return wave
    if abs(coef) > 1.0:
        raise ValueError(f"de-emphasis needs |coef| <= 1, got {coef}")
    shape = wave.shape
    total = shape[-1]
    block = max(8, math.isqrt(total))
    n_blocks = -(-total // block)
    x = F.pad(wave.reshape(-1, total), (0, n_blocks * block - total)).reshape(-1, n_blocks, block)
    dtype, device = wave.dtype, wave.device
    idx = torch.arange(block, device=device)
    lag = idx[:, None] - idx[None, :]
    inner = torch.where(lag >= 0, torch.tensor(coef, dtype=dtype, device=device) ** lag.clamp_min(0),
                        torch.zeros((), dtype=dtype, device=device))  # (L, L)
    local = torch.matmul(x, inner.T)  # y inside each block as if it started from rest
    b = torch.arange(n_blocks, device=device)
    blag = b[:, None] - b[None, :]
    decay = torch.tensor(coef ** block, dtype=dtype, device=device)
    outer = torch.where(blag >= 0, decay ** blag.clamp_min(0), torch.zeros((), dtype=dtype, device=device))
    ends = torch.matmul(local[..., -1], outer.T)  # y at each block's end, carries included
    carry = F.pad(ends[:, :-1], (1, 0))  # y at the end of the previous block
    rise = torch.tensor(coef, dtype=dtype, device=device) ** (idx + 1).to(dtype)
    y = local + carry[..., None] * rise
    return y.reshape(-1, n_blocks * block)[:, :total].reshape(shape)


def synthesis_framing(hop_length: int, frames: int, overlap: int) -> tuple[int, int]:
    """Hop and frame count of the synthesis grid: ``overlap`` synthesis frames per analysis hop, same span.

    The hop is rounded to whole samples (``hop_length / overlap``); the frame count then covers the analysis span
    ``hop_length * (frames - 1)`` as closely as whole hops can.
    """
    if overlap < 1:
        raise ValueError(f"synthesis overlap must be >= 1, got {overlap}")
    hop = max(1, round(hop_length / overlap))
    return hop, round(hop_length * (frames - 1) / hop) + 1


def resample_frames(magnitude: torch.Tensor, frames: int) -> torch.Tensor:
    """``(..., bins, T)`` -> ``(..., bins, frames)`` by linear interpolation in time, end frames kept.

    A frame's magnitude changes smoothly between neighbouring analysis frames (each is a 20 ms window over a
    slowly varying signal), so interpolating gives the spectra of the windows in between closely enough for
    Griffin-Lim, which then synthesises with overlapping windows.
    """
    if magnitude.shape[-1] == frames:
        return magnitude
    if magnitude.shape[-1] < 2:
        return magnitude.expand(*magnitude.shape[:-1], frames)
    lead = magnitude.shape[:-1]
    flat = magnitude.reshape(1, -1, magnitude.shape[-1])
    out = F.interpolate(flat, size=frames, mode="linear", align_corners=True)
    return out.reshape(*lead, frames)


def fd_mfcc_to_audio(
    features_raw: torch.Tensor, sample_rate: int, config: FeatureConfig | None = None, n_iter: int = 32, *,
    momentum: float = 0.99, init: str = "random", generator: torch.Generator | None = None,
    length: int | None = None, nnls_iter: int = 50, regularization: float = 1e-2, overlap: int = SYNTHESIS_OVERLAP,
) -> torch.Tensor:
    """Raw (un-normalised) FD-MFCC ``(N, 3, n_mfcc, frames)`` -> waveforms ``(N, T)``.

    Only channel 0, the static MFCC, is inverted: for real clips the deltas are functions of it, and in a distilled
    set they only describe how it changes over time.  Plain-MFCC features ``(N, 1, n_mfcc, frames)`` work too.
    ``T`` defaults to ``hop * (frames - 1)``, the original clip length whenever that was a multiple of the hop.
    ``regularization`` is Griffin-Lim's (see :func:`griffin_lim`; 0 gives librosa's synthesis and its clicks).
    Griffin-Lim synthesises with the features' own analysis window (``config.window``).

    ``overlap`` synthesis frames per analysis hop (default 4): the magnitudes are interpolated in time
    (:func:`resample_frames`) and Griffin-Lim synthesises with the same window at ``hop / overlap``.  Our
    features' frames do not overlap (20 ms window, 20 ms hop), and synthesising on that grid gives every 20 ms
    frame its own phase and a window that falls to ~0 at its edges: a 50 Hz modulation heard as a buzz and seen as
    vertical stripes (``scripts/bench_fidelity.py``'s "buzz" column).  With 75 % overlap the window sum is flat
    and neighbouring frames agree on their phase.  ``overlap=1`` synthesises on the analysis grid (the old output).
    """
    config = config or FeatureConfig()
    if config.kind not in ("fd_mfcc", "mfcc"):
        raise ValueError(f"only MFCC-based features can be turned into audio, not {config.kind!r}")
    if features_raw.dim() != 4 or features_raw.shape[-2] != config.n_coeffs:
        raise ValueError(
            f"expected features (N, C, {config.n_coeffs}, frames) for {config.kind}, got {tuple(features_raw.shape)}"
        )
    win_length, hop_length, n_fft = AF.frame_params(sample_rate, config.frame_ms, config.hop_ms)
    mel_power = db_to_power(mfcc_to_mel_db(features_raw[:, 0], config.n_mels))
    magnitude = mel_to_stft_magnitude(mel_power, sample_rate, n_fft, n_iter=nnls_iter)
    window = config.window  # Griffin-Lim must synthesise with the features' analysis window
    hop, frames = synthesis_framing(hop_length, magnitude.shape[-1], overlap)
    length = hop_length * (magnitude.shape[-1] - 1) if length is None else length
    wave = griffin_lim(
        resample_frames(magnitude, frames), n_fft, hop, win_length, n_iter, momentum, init, generator, length,
        regularization, window,
    )
    return de_emphasis(wave, config.pre_emphasis)
