"""Class-balanced replay memories as Avalanche storage policies: the part every memory kind shares.

A :class:`ClassMemoryBuffer` keeps, per seen class, an ordered tensor of memory inputs; after each experience it
asks its subclass to fill the classes it has not seen yet (:meth:`ClassMemoryBuffer.select`) and then trims every
class to the quota, keeping each class's first rows (herding order, so a trimmed herding set is still a herding
set).  Memories are kept as tensors, not as views into the stream, so a distilled memory (synthetic inputs that
exist in no data set) and real exemplars are handled alike, and balanced fine-tuning can read them directly.

Budget: with ``mem_per_class`` every seen class keeps exactly that many inputs and ``max_size`` must fit them
all; without it the quota is ``max_size // seen classes`` (iCaRL/EEIL's fixed total budget), shrinking as
classes arrive.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from avalanche.training.storage_policy import ExemplarsBuffer

from strategies.avalanche_data import dataset_tensors, tensor_dataset
from ddfad_apps.distill import NotEnoughClipsError


class MemoryBudgetError(ValueError):
    """The replay budget cannot give every seen class at least the memory it asks for."""


class ClassMemoryBuffer(ExemplarsBuffer):
    """Per-class replay memory filled by :meth:`select` for each new class; usable as ``storage_policy``."""

    kind = "base"

    def __init__(self, max_size: int, mem_per_class: int | None = None, seed: int = 0) -> None:
        if max_size < 1:
            raise MemoryBudgetError(f"memory size must be >= 1, got {max_size}")
        if mem_per_class is not None and mem_per_class < 1:
            raise MemoryBudgetError(f"mem_per_class must be >= 1, got {mem_per_class}")
        super().__init__(max_size)
        self.mem_per_class = mem_per_class
        self.seed = seed
        self.memory: dict[int, torch.Tensor] = {}
        self.updates = 0

    # -- budget ------------------------------------------------------------------------------------------------
    def quota(self, num_classes: int) -> int:
        """Inputs per class when ``num_classes`` classes share the memory; raises :class:`MemoryBudgetError`."""
        if self.mem_per_class is not None:
            if self.mem_per_class * num_classes > self.max_size:
                raise MemoryBudgetError(
                    f"memory of {self.max_size} inputs cannot hold {self.mem_per_class} per class for "
                    f"{num_classes} classes; give mem_size >= {self.mem_per_class * num_classes} or a smaller "
                    "mem_per_class"
                )
            return self.mem_per_class
        q = self.max_size // num_classes
        if q < 1:
            raise MemoryBudgetError(
                f"memory of {self.max_size} inputs is too small for {num_classes} classes (less than one each); "
                f"give mem_size >= {num_classes}"
            )
        return q

    @property
    def classes(self) -> list[int]:
        return sorted(self.memory)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All memory inputs and labels, grouped by class (ascending)."""
        if not self.memory:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        xs = [self.memory[c] for c in self.classes]
        ys = [torch.full((len(self.memory[c]),), c, dtype=torch.long) for c in self.classes]
        return torch.cat(xs), torch.cat(ys)

    def counts(self) -> dict[int, int]:
        return {c: len(v) for c, v in sorted(self.memory.items())}

    # -- Avalanche hooks ---------------------------------------------------------------------------------------
    def update(self, strategy: Any, **kwargs: Any) -> None:
        """What Avalanche 0.6's ``ReplayPlugin`` calls; overridden only to skip the base's deprecation warning."""
        self.post_adapt(strategy, strategy.experience)

    def post_adapt(self, agent: Any, exp: Any) -> None:
        """Add the experience's new classes (filled by :meth:`select`) and trim all classes to the quota."""
        x, y = dataset_tensors(exp.dataset)
        new = sorted(set(y.unique().tolist()) - set(self.memory))
        quota = self.quota(len(self.memory) + len(new))
        if new:
            counts = {c: int((y == c).sum()) for c in new}
            small = {c: n for c, n in counts.items() if n < quota}
            if small:
                c, n = min(small.items(), key=lambda kv: kv[1])
                raise NotEnoughClipsError(
                    f"{self.kind} memory asks for {quota} inputs per class but class {c} of this experience has "
                    f"only {n}; lower mem_per_class (<= {min(counts.values())}) or raise the budget"
                )
            keep = torch.isin(y, torch.tensor(new))
            chosen = self.select(x[keep], y[keep], new, quota, agent)
            for c in new:
                if len(chosen[c]) != quota:
                    raise RuntimeError(f"{type(self).__name__}.select returned {len(chosen[c])} rows for class {c}, "
                                       f"expected {quota}")
                self.memory[c] = chosen[c].detach().cpu()
        for c in self.memory:
            self.memory[c] = self.memory[c][:quota]
        self.updates += 1
        self._rebuild()

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change the budget and trim the classes to the new quota."""
        self.max_size = new_size
        if self.memory:
            quota = self.quota(len(self.memory))
            for c in self.memory:
                self.memory[c] = self.memory[c][:quota]
            self._rebuild()

    def _rebuild(self) -> None:
        self.buffer = tensor_dataset(*self.tensors())

    @abstractmethod
    def select(self, x: torch.Tensor, y: torch.Tensor, new_classes: list[int], k: int,
               agent: Any) -> dict[int, torch.Tensor]:
        """``k`` memory inputs for each class of ``new_classes`` from its rows of ``(x, y)``, most useful first."""


def model_embedding(model: torch.nn.Module):
    """A herding embedding from ``model``: its ``embed`` (ddfad models) else its output, in eval mode, no grad.

    Takes CPU batches (as :func:`ddfad_apps.distill.coreset.select_herding` passes them) and returns CPU rows.
    """
    device = next(model.parameters()).device
    fn = getattr(model, "embed", None) or model

    @torch.no_grad()
    def embed(batch: torch.Tensor) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            return fn(batch.to(device)).flatten(1).cpu()
        finally:
            model.train(was_training)

    return embed
