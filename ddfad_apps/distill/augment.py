"""Differentiable augmentation of feature "images" ``(N, C, coeffs, frames)``: what DSA does for images, for audio.

Time shift, time masking and frequency masking (SpecAugment-style).  Every operation is a gather or a
multiplication by a mask, so gradients flow to the input: synthetic clips can be learned *through* augmentation.
Parameters are drawn once by :meth:`AudioAugment.sample` and can be applied to two batches (siamese
augmentation: the real and the synthetic batch see the same transformation in gradient matching).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AugmentParams:
    """Per-sample shift (frames), time-mask start/width and frequency-mask start/width."""

    shift: torch.Tensor
    t_start: torch.Tensor
    t_width: torch.Tensor
    f_start: torch.Tensor
    f_width: torch.Tensor


@dataclass
class AudioAugment:
    """Fractions are relative to the number of frames (time) or coefficients (frequency); 0 disables a transform."""

    max_shift: float = 0.125
    max_time_mask: float = 0.15
    max_freq_mask: float = 0.15

    def sample(self, n: int, coeffs: int, frames: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> AugmentParams:
        def draw(high: int, size: int = n) -> torch.Tensor:
            return torch.randint(0, max(1, high + 1), (size,), generator=generator).to(device)

        s = int(self.max_shift * frames)
        shift = draw(2 * s) - s
        tw = draw(int(self.max_time_mask * frames))
        fw = draw(int(self.max_freq_mask * coeffs))
        t_start = (torch.rand(n, generator=generator).to(device) * (frames - tw + 1).clamp_min(1)).long()
        f_start = (torch.rand(n, generator=generator).to(device) * (coeffs - fw + 1).clamp_min(1)).long()
        return AugmentParams(shift, t_start, tw, f_start, fw)

    def apply(self, x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        """Apply drawn parameters to ``x``; a batch larger than the draw reuses it per class-aligned position."""
        n, _, coeffs, frames = x.shape
        if p.shift.shape[0] != n:
            raise ValueError(f"augmentation drawn for {p.shift.shape[0]} samples, applied to {n}")
        t = torch.arange(frames, device=x.device)
        src = t.unsqueeze(0) - p.shift.unsqueeze(1)  # (n, frames): out[t] = x[t - shift]
        inside = ((src >= 0) & (src < frames)).to(x.dtype)
        idx = src.clamp(0, frames - 1).view(n, 1, 1, frames).expand_as(x)
        out = torch.gather(x, 3, idx) * inside.view(n, 1, 1, frames)
        t_keep = ~((t.unsqueeze(0) >= p.t_start.unsqueeze(1)) & (t.unsqueeze(0) < (p.t_start + p.t_width).unsqueeze(1)))
        f = torch.arange(coeffs, device=x.device)
        f_keep = ~((f.unsqueeze(0) >= p.f_start.unsqueeze(1)) & (f.unsqueeze(0) < (p.f_start + p.f_width).unsqueeze(1)))
        mask = f_keep.view(n, 1, coeffs, 1).to(x.dtype) * t_keep.view(n, 1, 1, frames).to(x.dtype)
        return out * mask

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], x.shape[2], x.shape[3], x.device, generator))


NO_AUGMENT = AudioAugment(0.0, 0.0, 0.0)
