"""Avalanche strategies and plugins built on the ddfad-apps distillation engine (continual learning).

Storage policies (Avalanche ``ExemplarsBuffer``, for ``ReplayPlugin(mem_size, storage_policy=...)``):
:class:`DistilledMemory` (each new class distilled into ``k`` synthetic inputs), :class:`HerdingMemory`,
:class:`RandomMemory`; :class:`EEIL`, an Avalanche strategy owning its replay, and its pieces as plugins without
replay (:func:`eeil_plugins`; :class:`TrainAugmentPlugin` augments training batches); :class:`MLflowLogger`
for Avalanche metrics.
"""

import ddfad_apps  # noqa: F401  (first: its process settings and warning filters precede Avalanche)
from strategies.class_memory import ClassMemoryBuffer, MemoryBudgetError
from strategies.distilled_storage import DistilledMemory
from strategies.eeil import (
    EEIL,
    BalancedFinetunePlugin,
    CrossDistillationPlugin,
    SeenClassMask,
    TrainAugmentPlugin,
    distillation_loss,
    eeil_plugins,
)
from strategies.exemplar_storage import HerdingMemory, RandomMemory
from strategies.mlflow_logger import MLflowLogger

MEMORIES: dict[str, type[ClassMemoryBuffer]] = {"distilled": DistilledMemory, "herding": HerdingMemory,
                                                "random": RandomMemory}

__all__ = [
    "EEIL",
    "MEMORIES",
    "BalancedFinetunePlugin",
    "ClassMemoryBuffer",
    "CrossDistillationPlugin",
    "DistilledMemory",
    "HerdingMemory",
    "MLflowLogger",
    "MemoryBudgetError",
    "RandomMemory",
    "SeenClassMask",
    "TrainAugmentPlugin",
    "distillation_loss",
    "eeil_plugins",
]
