"""Reading clips: decode with soundfile, down-mix to mono, resample, pad or crop to a fixed length.

Errors name the file, so a corrupt clip among thousands is found at once.  A clip is decoded only as far as the
requested length needs (a one-hour recording cropped to 1 s reads about 1 s), with the samples a whole-file decode
would give (up to float32 rounding in the resampler).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taF
from tqdm.auto import tqdm


class AudioReadError(RuntimeError):
    """A clip could not be read or holds no samples; the message names the file."""


# torchaudio.functional.resample's defaults, which read_audio uses.
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99


def frames_needed(num_samples: int | None, file_rate: int, sample_rate: int) -> int:
    """How many frames of a ``file_rate`` file give the first ``num_samples`` at ``sample_rate`` as a full read does.

    ``-1`` (everything) when no length is asked for.  The resampler works in blocks of ``orig`` input frames (the
    rates divided by their gcd) and each output sample sees ``width`` frames beyond its block, so one extra block
    plus the filter width past ``ceil(num_samples * file_rate / sample_rate)`` leaves the kept samples unchanged
    (but for float32 rounding: the convolution sums in a length-dependent order).
    """
    if num_samples is None:
        return -1
    if file_rate == sample_rate:
        return num_samples
    g = math.gcd(file_rate, sample_rate)
    orig, new = file_rate // g, sample_rate // g
    width = math.ceil(_LOWPASS_FILTER_WIDTH * orig / (min(orig, new) * _ROLLOFF))
    return math.ceil(num_samples / new) * orig + orig + width


def read_audio(path: str | Path, sample_rate: int, num_samples: int | None = None) -> torch.Tensor:
    """One clip as a mono float32 tensor at ``sample_rate``, padded with zeros or cropped to ``num_samples``.

    Only the frames the crop keeps (see :func:`frames_needed`) are decoded, so long recordings cost no more than
    short ones.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            data = f.read(frames_needed(num_samples, sr, sample_rate), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt or unsupported files
        raise AudioReadError(f"cannot read audio file {path}: {exc}") from exc
    if data.size == 0:
        raise AudioReadError(f"audio file {path} holds no samples")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if not torch.isfinite(wave).all():
        raise AudioReadError(f"audio file {path} holds NaN or infinite samples")
    if sr != sample_rate:
        wave = taF.resample(wave, sr, sample_rate)
    if num_samples is not None:
        wave = fix_length(wave, num_samples)
    return wave


def fix_length(wave: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Crop the end, or zero-pad the end, to ``num_samples`` (the clips' onsets stay aligned)."""
    n = wave.shape[-1]
    if n >= num_samples:
        return wave[..., :num_samples]
    return torch.nn.functional.pad(wave, (0, num_samples - n))


def read_many(
    paths: Sequence[Path], sample_rate: int, num_samples: int, on_error: str = "raise", progress: bool = True,
    desc: str = "reading audio",
) -> tuple[torch.Tensor, list[int]]:
    """Read clips into one ``(N, num_samples)`` tensor; returns it and the indices of the clips kept.

    ``on_error='raise'`` stops at the first unreadable clip; ``'skip'`` leaves it out with a warning that names it.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    out = torch.empty(len(paths), num_samples)
    kept: list[int] = []
    for i, path in enumerate(tqdm(paths, desc=desc, disable=not progress, leave=False)):
        try:
            out[len(kept)] = read_audio(path, sample_rate, num_samples)
        except AudioReadError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"skipping: {exc}", stacklevel=2)
            continue
        kept.append(i)
    return out[: len(kept)].clone() if len(kept) < len(paths) else out, kept
