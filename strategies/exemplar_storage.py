"""Real-exemplar memories: herding (iCaRL/EEIL's own selection) and random, as Avalanche storage policies.

Both are thin adapters from :class:`~strategies.class_memory.ClassMemoryBuffer` to the coreset selectors of the
distillation engine (:mod:`ddfad_apps.distill.coreset`), so CL and the distillation baselines select the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from ddfad_apps.distill.coreset import select_herding, select_random
from ddfad_apps.features.dataset import FeatureSet
from strategies.class_memory import ClassMemoryBuffer, model_embedding


def local_feature_set(x: torch.Tensor, y: torch.Tensor, classes: list[int]) -> FeatureSet:
    """The rows of ``classes`` relabelled ``0..k-1`` (the engine's convention); ``classes[i]`` is label ``i``."""
    lookup = {c: i for i, c in enumerate(classes)}
    local = torch.tensor([lookup[int(v)] for v in y.tolist()], dtype=torch.long)
    return FeatureSet(x, local, [str(c) for c in classes], {"dataset": "stream"})


class RandomMemory(ClassMemoryBuffer):
    """``k`` real inputs per class drawn uniformly (seeded by ``seed`` and the update count)."""

    kind = "random"

    def select(self, x: torch.Tensor, y: torch.Tensor, new_classes: list[int], k: int,
               agent: Any) -> dict[int, torch.Tensor]:
        data = local_feature_set(x, y, new_classes)
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.updates)
        idx = select_random(data, k, gen).view(len(new_classes), k)
        return {c: x[idx[i]] for i, c in enumerate(new_classes)}


class HerdingMemory(ClassMemoryBuffer):
    """``k`` real inputs per class chosen by herding in the embedding of the model just trained (EEIL).

    The embedding is ``agent.model.embed`` (or the model's output) when a strategy is given, else the raw inputs;
    rows are kept in herding order so shrinking the quota keeps a valid herding set.
    """

    kind = "herding"

    def select(self, x: torch.Tensor, y: torch.Tensor, new_classes: list[int], k: int,
               agent: Any) -> dict[int, torch.Tensor]:
        data = local_feature_set(x, y, new_classes)
        model = getattr(agent, "model", None)
        embed = model_embedding(model) if model is not None else None
        idx = select_herding(data, k, embed=embed).view(len(new_classes), k)
        return {c: x[idx[i]] for i, c in enumerate(new_classes)}
