"""Per-channel, per-coefficient standardisation fitted on the training split only.

Essential for FD-MFCC: the static MFCC has a std around 12 while the deltas sit near 0.3 and 0.1; unscaled,
the network (and the distillation's image learning rate) sees only the first channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FeatureStats:
    """Mean and std of shape ``(C, coeffs, 1)``."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, features: torch.Tensor, eps: float = 1e-5) -> "FeatureStats":
        """Fit on ``(N, C, coeffs, frames)`` training features."""
        mean = features.mean(dim=(0, 3), keepdim=True)[0]
        std = features.std(dim=(0, 3), keepdim=True)[0].clamp_min(eps)
        return cls(mean, std)

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean.to(features)) / self.std.to(features)

    def invert(self, normalized: torch.Tensor) -> torch.Tensor:
        """Back to raw feature units (needed to turn distilled features into audio)."""
        return normalized * self.std.to(normalized) + self.mean.to(normalized)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "FeatureStats":
        return cls(state["mean"], state["std"])
