"""Class-balanced replay memories as Avalanche storage policies: the part every memory kind shares.

A :class:`ClassMemoryBuffer` keeps, per seen class, an ordered tensor of memory inputs and the class's task
label.  After each experience it asks its subclass (:meth:`ClassMemoryBuffer.select`) for the memory of every
class the experience holds - a new class from its rows, a class seen before from its old memory *plus* its new
rows (herding/random reselect among both; the distilled memory distils both, see
:class:`~strategies.distilled_storage.DistilledMemory`) - then trims every class to the quota, keeping each
class's first rows (herding order, so a trimmed herding set is still a herding set).  Memories are kept as
tensors in the stream's own dtype, not as views into the stream, so a distilled memory (synthetic inputs that
exist in no data set) and real exemplars are handled alike, and balanced fine-tuning can read them directly.

Budget: with ``mem_per_class`` every seen class keeps exactly that many inputs and ``max_size`` must fit them
all; without it the quota is ``max_size // seen classes`` (iCaRL/EEIL's fixed total budget), shrinking as
classes arrive.  A budget that cannot work is a :class:`MemoryBudgetError` naming the numbers, raised before
training: at construction when ``num_classes`` (the stream's class count) is given, by :meth:`check_stream`
for a whole stream, and by :meth:`check_experience` (which :class:`~strategies.eeil.EEIL` calls before each
experience trains).  Updating twice for one experience (a ``ReplayPlugin`` and balanced fine-tuning both asking)
is a no-op the second time.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from avalanche.training.storage_policy import ExemplarsBuffer

from ddfad_apps.distill import NotEnoughClipsError
from strategies.avalanche_data import dataset_tensors, tensor_dataset


class MemoryBudgetError(NotEnoughClipsError):
    """The replay budget (or a class's inputs) cannot give every seen class the memory it asks for."""


def experience_counts(exp: Any) -> dict[int, int]:
    """Rows per class of an experience, read from its dataset's targets (no inputs are loaded)."""
    return dict(sorted(Counter(int(c) for c in exp.dataset.targets).items()))


def experience_key(exp: Any) -> tuple[Any, ...]:
    """What identifies an experience across the objects Avalanche makes for it (stream name and position)."""
    stream = getattr(getattr(exp, "origin_stream", None), "name", None)
    return stream, getattr(exp, "current_experience", None), id(exp.dataset)


class ClassMemoryBuffer(ExemplarsBuffer):
    """Per-class replay memory filled by :meth:`select`; usable as ``storage_policy`` (module docstring).

    ``num_classes`` (optional): the stream's class count, so an impossible budget fails here, at construction.
    """

    kind = "base"

    def __init__(self, max_size: int, mem_per_class: int | None = None, seed: int = 0, *,
                 num_classes: int | None = None) -> None:
        if max_size < 1:
            raise MemoryBudgetError(f"memory size must be >= 1, got {max_size}")
        if mem_per_class is not None and mem_per_class < 1:
            raise MemoryBudgetError(f"mem_per_class must be >= 1, got {mem_per_class}")
        super().__init__(max_size)
        self.mem_per_class = mem_per_class
        self.seed = seed
        self.memory: dict[int, torch.Tensor] = {}
        self.task_of: dict[int, int] = {}
        self.updates = 0
        self._last_key: tuple[Any, ...] | None = None
        if num_classes is not None:
            self.quota(num_classes)

    # -- budget ------------------------------------------------------------------------------------------------
    def quota(self, num_classes: int) -> int:
        """Inputs per class when ``num_classes`` classes share the memory; raises :class:`MemoryBudgetError`."""
        if self.mem_per_class is not None:
            if self.mem_per_class * num_classes > self.max_size:
                raise MemoryBudgetError(
                    f"{self.kind} memory of {self.max_size} inputs cannot hold {self.mem_per_class} per class for "
                    f"{num_classes} classes ({self.mem_per_class} x {num_classes} = "
                    f"{self.mem_per_class * num_classes}); give mem_size >= {self.mem_per_class * num_classes} or "
                    f"mem_per_class <= {self.max_size // num_classes}"
                )
            return self.mem_per_class
        q = self.max_size // num_classes
        if q < 1:
            raise MemoryBudgetError(
                f"{self.kind} memory of {self.max_size} inputs is too small for {num_classes} classes (less than one "
                f"each); give mem_size >= {num_classes}"
            )
        return q

    def plan(self, experiences: Iterable[Mapping[int, int]], first: int = 0) -> list[int]:
        """The quota after each experience (given as rows per class) from the memory's current state.

        Raises :class:`MemoryBudgetError` naming the experience (numbered from ``first``), the class and the
        numbers when the budget or a class's inputs (its new rows plus what the memory holds) fall short.
        """
        kept = self.counts()
        quotas = []
        for i, counts in enumerate(experiences, start=first):
            seen = set(kept) | set(counts)
            try:
                q = self.quota(len(seen))
            except MemoryBudgetError as exc:
                raise MemoryBudgetError(f"experience {i}: {exc}") from None
            short = {c: n + kept.get(c, 0) for c, n in counts.items() if n + kept.get(c, 0) < q}
            if short:
                c = min(short, key=short.__getitem__)
                raise MemoryBudgetError(
                    f"{self.kind} memory asks for {q} inputs per class but class {c} of experience {i} has only "
                    f"{counts[c]}" + (f" (+{kept[c]} in memory)" if kept.get(c) else "")
                    + f"; lower mem_per_class (<= {min(n + kept.get(c, 0) for c, n in counts.items())}) or the "
                    "budget per class"
                )
            kept = {c: q for c in seen}
            quotas.append(q)
        return quotas

    def check_stream(self, stream: Iterable[Any], agent: Any = None) -> list[int]:
        """Check a whole stream before any training: the budget at every step, every class's inputs, and the
        input shape (:meth:`check_inputs`); returns the quota after each experience."""
        experiences = list(stream)
        quotas = self.plan([experience_counts(e) for e in experiences])
        if experiences:
            self.check_inputs(experiences[0].dataset[0][0], agent)
        return quotas

    def check_experience(self, exp: Any, agent: Any = None) -> int:
        """Check one experience before it trains (budget, inputs per class, input shape); returns the quota."""
        (q,) = self.plan([experience_counts(exp)])
        self.check_inputs(exp.dataset[0][0], agent)
        return q

    def check_inputs(self, example: Any, agent: Any = None) -> None:
        """Refuse inputs this memory cannot store (real exemplars take any tensor; subclasses narrow it)."""
        if not isinstance(example, torch.Tensor):
            raise TypeError(f"{self.kind} memory stores tensors; the stream's inputs are {type(example).__name__}")

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
        """Fill the memory of every class of ``exp`` (new or merged) and trim all classes to the quota."""
        key = experience_key(exp)
        if key == self._last_key:
            return  # already updated for this experience (replay and fine-tuning both asked)
        x, y = dataset_tensors(exp.dataset)
        tasks = task_labels(exp, len(y))
        quota = self.check_experience(exp, agent)
        fill = sorted(set(y.tolist()))
        old = [c for c in fill if c in self.memory]
        cand_x = torch.cat([x, *(self.memory[c] for c in old)])  # a float (distilled) memory promotes int rows
        cand_y = torch.cat([y, *(torch.full((len(self.memory[c]),), c, dtype=torch.long) for c in old)])
        chosen = self.select(cand_x, cand_y, fill, quota, agent)
        for c in fill:
            if len(chosen[c]) != quota:
                raise RuntimeError(f"{type(self).__name__}.select returned {len(chosen[c])} rows for class {c}, "
                                   f"expected {quota}")
            self.memory[c] = chosen[c].detach().cpu()
            self.task_of[c] = Counter(tasks[y == c].tolist()).most_common(1)[0][0]
        for c in self.memory:
            self.memory[c] = self.memory[c][:quota]
        self.updates += 1
        self._last_key = key
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
        x, y = self.tensors()
        tasks = [self.task_of.get(c, 0) for c in y.tolist()]
        self.buffer = tensor_dataset(x, y, tasks if tasks else 0)

    @abstractmethod
    def select(self, x: torch.Tensor, y: torch.Tensor, classes: list[int], k: int,
               agent: Any) -> dict[int, torch.Tensor]:
        """``k`` memory inputs for each class of ``classes`` from its rows of ``(x, y)``, most useful first.

        The rows of a class seen before include its old memory, so the subclass merges old and new by choosing.
        """


def task_labels(exp: Any, n: int) -> torch.Tensor:
    """Each row's task label: the dataset's ``targets_task_labels``, else the experience's label, else 0."""
    labels = getattr(exp.dataset, "targets_task_labels", None)
    if labels is not None and len(labels) == n:
        return torch.as_tensor(list(labels), dtype=torch.long)
    return torch.full((n,), int(getattr(exp, "task_label", 0) or 0), dtype=torch.long)


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

