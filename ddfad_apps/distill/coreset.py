"""Coreset baselines: pick ``cpc`` real clips per class (random, herding, k-center).

They answer "how good is a small *real* subset?", the bar every distillation method has to clear, and random
selection is also how synthetic sets are initialised.
"""

from __future__ import annotations

import torch

from ddfad_apps.features.dataset import FeatureSet


def select_random(data: FeatureSet, cpc: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``cpc`` clips per class drawn uniformly without replacement, grouped by class."""
    picks = []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:cpc]])
    return torch.cat(picks)
