"""End-to-End Incremental Learning (Castro et al., ECCV 2018) as small Avalanche plugins.

EEIL = (1) train on new data + a class-balanced memory with cross-entropy plus a distillation loss that keeps
the old classes' outputs close to the previous model's (temperature 2), then (2) balanced fine-tuning: a few
epochs with a reduced learning rate on a class-balanced subset (the memory, which after the storage update holds
the same number of inputs for old and new classes).  Avalanche ships no EEIL, so it is built from:

* :class:`SeenClassMask` - one classifier head sized for the whole stream; logits of classes not seen yet are
  masked, so they neither win predictions nor get pushed down before their data arrives (simpler than growing
  the head, and standard for EEIL/iCaRL-style recipes);
* :class:`CrossDistillationPlugin` - the distillation term, against a frozen copy of the model taken before
  each experience;
* :class:`BalancedFinetunePlugin` - stage (2), reading the memory of a
  :class:`~strategies.class_memory.ClassMemoryBuffer` (herding, random or distilled);
* Avalanche's own ``ReplayPlugin`` with that buffer as ``storage_policy`` for the new data + memory batches.

:func:`eeil_plugins` returns them in the order they must run.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import ReplayPlugin

from strategies.class_memory import ClassMemoryBuffer

MASK_VALUE = -1e4  # finite, so losses and softmaxes over masked logits stay finite in any precision


def experience_classes(exp: Any) -> set[int]:
    """Classes present in an experience (from its dataset's targets, so any Avalanche stream works)."""
    return {int(c) for c in exp.dataset.targets.uniques}


def mask_logits(logits: torch.Tensor, seen: set[int] | list[int]) -> torch.Tensor:
    """``logits`` with every column outside ``seen`` set to :data:`MASK_VALUE`."""
    keep = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    keep[list(seen)] = True
    return logits.masked_fill(~keep, MASK_VALUE)


def distillation_loss(new_logits: torch.Tensor, old_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """EEIL's cross-distillation term: ``T^2 * KL(softmax(old/T) || softmax(new/T))``, batch mean.

    KL rather than EEIL's cross-entropy with soft targets: same gradient, but zero when the outputs agree.
    """
    if new_logits.shape != old_logits.shape:
        raise ValueError(f"distillation needs logits of one shape, got {tuple(new_logits.shape)} and "
                         f"{tuple(old_logits.shape)}")
    if new_logits.shape[1] == 0:
        return new_logits.sum() * 0.0
    log_p = F.log_softmax(new_logits / temperature, dim=1)
    q = F.softmax(old_logits / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2


class SeenClassMask(SupervisedPlugin):
    """Mask the logits of classes not seen yet, in training and evaluation (a full-size head for the stream)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.seen |= experience_classes(strategy.experience)

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        strategy.mb_output = mask_logits(strategy.mb_output, self.seen)

    def after_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        if self.seen:
            strategy.mb_output = mask_logits(strategy.mb_output, self.seen)


class CrossDistillationPlugin(SupervisedPlugin):
    """Add ``weight * distillation_loss`` on the old classes' logits to every training mini-batch's loss."""

    def __init__(self, temperature: float = 2.0, weight: float = 1.0) -> None:
        super().__init__()
        self.temperature, self.weight = temperature, weight
        self.old_model: torch.nn.Module | None = None
        self.old_classes: list[int] = []
        self._learned: set[int] = set()

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.old_classes = sorted(self._learned)
        self.old_model = None
        if self.old_classes:
            self.old_model = copy.deepcopy(strategy.model).eval()
            for p in self.old_model.parameters():
                p.requires_grad_(False)

    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The distillation term for inputs ``x`` whose current logits are ``logits`` (0 before any old class)."""
        if self.old_model is None:
            return logits.sum() * 0.0
        with torch.no_grad():
            old = self.old_model(x)[:, self.old_classes]
        return self.weight * distillation_loss(logits[:, self.old_classes], old, self.temperature)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if self.old_model is not None:
            strategy.loss = strategy.loss + self.loss(strategy.mb_x, strategy.mb_output)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._learned |= experience_classes(strategy.experience)


class BalancedFinetunePlugin(SupervisedPlugin):
    """EEIL stage (2): after each incremental experience, fine-tune on the class-balanced memory.

    Runs ``epochs`` epochs of SGD (momentum 0.9) at ``lr_factor`` x the strategy's learning rate on all of
    ``storage``'s inputs (the same count for every seen class), with cross-entropy over the seen classes plus,
    when ``distillation`` is given, its term against the pre-experience model.  Skipped after the first
    experience (nothing to balance).  Must run after the storage update, i.e. come after ``ReplayPlugin``.
    """

    def __init__(self, storage: ClassMemoryBuffer, epochs: int = 10, lr_factor: float = 0.1,
                 batch_size: int | None = None, distillation: CrossDistillationPlugin | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.storage, self.epochs, self.lr_factor = storage, epochs, lr_factor
        self.batch_size, self.distillation = batch_size, distillation
        self.generator = torch.Generator().manual_seed(seed)
        self.history: list[dict[str, float]] = []
        self.last_counts: dict[int, int] = {}
        self._seen: set[int] = set()

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        first = not self._seen
        self._seen |= experience_classes(strategy.experience)
        if first or self.epochs <= 0:
            return
        missing = self._seen - set(self.storage.classes)
        if missing:
            raise RuntimeError(
                f"balanced fine-tuning found no memory for classes {sorted(missing)}: the storage policy must be "
                "updated first (put ReplayPlugin before BalancedFinetunePlugin in the plugin list)"
            )
        x, y = self.storage.tensors()
        self.last_counts = self.storage.counts()
        self.finetune(strategy, x, y)

    def finetune(self, strategy: Any, x: torch.Tensor, y: torch.Tensor) -> None:
        model, device = strategy.model, strategy.device
        base_lr = strategy.optimizer.param_groups[0]["lr"]
        opt = torch.optim.SGD(model.parameters(), lr=base_lr * self.lr_factor, momentum=0.9,
                              weight_decay=strategy.optimizer.param_groups[0].get("weight_decay", 0.0))
        bs = min(self.batch_size or strategy.train_mb_size, len(x))
        x, y = x.to(device), y.to(device)
        model.train()
        for epoch in range(self.epochs):
            order = torch.randperm(len(x), generator=self.generator).to(device)
            total, n = 0.0, 0
            for start in range(0, len(x), bs):
                idx = order[start : start + bs]
                logits = mask_logits(model(x[idx]), self._seen)
                loss = F.cross_entropy(logits, y[idx])
                if self.distillation is not None:
                    loss = loss + self.distillation.loss(x[idx], logits)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                n += len(idx)
            self.history.append({"epoch": epoch + 1, "loss": total / n})


def eeil_plugins(storage: ClassMemoryBuffer, *, temperature: float = 2.0, finetune_epochs: int = 10,
                 finetune_lr_factor: float = 0.1, finetune_batch_size: int | None = None, seed: int = 0,
                 batch_size_mem: int | None = None) -> list[SupervisedPlugin]:
    """The EEIL plugin list for a Naive (or any supervised) Avalanche strategy, in the order they must run."""
    kd = CrossDistillationPlugin(temperature)
    return [
        ReplayPlugin(storage.max_size, batch_size_mem=batch_size_mem, storage_policy=storage),
        SeenClassMask(),
        kd,
        BalancedFinetunePlugin(storage, finetune_epochs, finetune_lr_factor, finetune_batch_size, kd, seed),
    ]
