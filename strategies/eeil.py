"""End-to-End Incremental Learning (Castro et al., ECCV 2018) as an Avalanche strategy and as plugins.

EEIL = (1) train on new data + a class-balanced memory with cross-entropy plus a distillation loss that keeps
the old classes' outputs close to the previous model's (temperature 2), then (2) balanced fine-tuning: a few
epochs at a reduced learning rate on a class-balanced set (the memory, which after its update holds the same
number of inputs for old and new classes), with the old classes distilled from the pre-experience model and a
*temporary* distillation of the new classes from the model as it was after stage (1), so the little balanced
data does not wash out what the full new data taught.  Avalanche ships no EEIL.

* :class:`EEIL` - the strategy (on Avalanche's ``SupervisedTemplate``).  It owns the replay: each training
  mini-batch is ``train_mb_size`` new rows plus ``batch_size_mem`` memory rows of its ``storage_policy``
  (Avalanche's ``ReplayDataLoader``), and it updates the memory after each experience; a ``ReplayPlugin`` (or
  any plugin with a ``storage_policy``) among ``plugins`` is refused, since it would replay a second memory.
  Budgets are checked before each experience trains (before the first, for a list of experiences).
* The pieces, each usable alone in any supervised strategy, in any order: :class:`SeenClassMask` (one head for
  the whole stream, unseen classes masked - simpler than growing the head, standard for EEIL/iCaRL recipes),
  :class:`CrossDistillationPlugin` (the distillation term, against a frozen copy of the model taken before each
  experience), :class:`BalancedFinetunePlugin` (stage 2; it updates its storage itself - a second update of one
  experience is a no-op - so it need not come after a ``ReplayPlugin``).  :func:`eeil_plugins` returns these
  three and *no replay*: add ``ReplayPlugin(storage.max_size, storage_policy=storage)`` yourself, or use
  :class:`EEIL`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins.evaluation import default_evaluator
from avalanche.training.templates import SupervisedTemplate

from strategies.class_memory import ClassMemoryBuffer

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (batch, generator) -> augmented batch
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


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` in eval mode with gradients off: a distillation teacher."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def teacher_term(teacher: torch.nn.Module, classes: list[int], x: torch.Tensor, logits: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """:func:`distillation_loss` of ``logits`` against ``teacher(x)`` on the columns ``classes``."""
    with torch.no_grad():
        target = teacher(x)[:, classes]
    return distillation_loss(logits[:, classes], target, temperature)


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


class TrainAugmentPlugin(SupervisedPlugin):
    """Augment every training mini-batch (new rows and replayed memory rows alike) before the forward pass.

    EEIL trains with data augmentation on new data and exemplars; a small memory replayed without it is
    memorised within a few steps.  ``augment(x, generator)`` returns a batch of ``x``'s shape (e.g.
    :class:`ddfad_apps.distill.augment.AudioAugment`, the same augmentation the evaluation protocol trains distilled
    sets with).  Evaluation batches are not touched; the distillation terms see the augmented rows too (teacher
    and student get the same input).
    """

    def __init__(self, augment: Augment, seed: int = 0) -> None:
        super().__init__()
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        strategy.mbatch[0] = self.augment(strategy.mbatch[0], self.generator)


class CrossDistillationPlugin(SupervisedPlugin):
    """Add ``weight * distillation_loss`` on the old classes' logits to every training mini-batch's loss.

    ``terms`` records ``(experience, value)`` of every term added (none while there is no old class).
    """

    def __init__(self, temperature: float = 2.0, weight: float = 1.0) -> None:
        super().__init__()
        self.temperature, self.weight = temperature, weight
        self.old_model: torch.nn.Module | None = None
        self.old_classes: list[int] = []
        self.terms: list[tuple[int, float]] = []
        self._learned: set[int] = set()

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.old_classes = sorted(self._learned)
        self.old_model = frozen_copy(strategy.model) if self.old_classes else None

    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The distillation term for inputs ``x`` whose current logits are ``logits`` (0 before any old class)."""
        if self.old_model is None:
            return logits.sum() * 0.0
        return self.weight * teacher_term(self.old_model, self.old_classes, x, logits, self.temperature)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if self.old_model is not None:
            term = self.loss(strategy.mb_x, strategy.mb_output)
            self.terms.append((int(getattr(strategy.experience, "current_experience", -1)), float(term.detach())))
            strategy.loss = strategy.loss + term

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._learned |= experience_classes(strategy.experience)


class BalancedFinetunePlugin(SupervisedPlugin):
    """EEIL stage (2): after each incremental experience, fine-tune on the class-balanced memory.

    Updates ``storage`` for the experience (a no-op when a ``ReplayPlugin`` already did), then runs ``epochs``
    epochs of SGD (momentum 0.9) at ``lr_factor`` x the strategy's learning rate on all of its inputs (the same
    count for every seen class), with cross-entropy over the seen classes plus ``distill_weight`` x the
    distillation of the old classes from the pre-experience model and of the new classes from the model after
    stage (1) (EEIL's temporary distillation).  Skipped after the first experience (nothing to balance).
    ``min_steps``: run more epochs when ``epochs`` would take fewer optimizer steps than this.  An epoch of a
    small memory is one or two steps (1 clip x 10 classes: one batch), so a budget counted in epochs alone
    vanishes exactly where the memory is smallest and the new classes' bias largest; EEIL's own recipe (30 epochs
    over 2,000 exemplars, batch 128) takes about 470 steps.
    ``augment``: augmentation of each fine-tuning batch (see :class:`TrainAugmentPlugin`), none by default.
    ``history`` holds each epoch's mean loss and distillation terms; ``last_counts`` the memory it used.
    """

    def __init__(self, storage: ClassMemoryBuffer, epochs: int = 10, lr_factor: float = 0.1,
                 batch_size: int | None = None, temperature: float = 2.0, distill_weight: float = 1.0,
                 seed: int = 0, min_steps: int = 0, augment: Augment | None = None) -> None:
        super().__init__()
        self.storage, self.epochs, self.lr_factor, self.min_steps = storage, epochs, lr_factor, min_steps
        self.augment = augment
        self.batch_size, self.temperature, self.distill_weight = batch_size, temperature, distill_weight
        self.generator = torch.Generator().manual_seed(seed)
        self.history: list[dict[str, float]] = []
        self.last_counts: dict[int, int] = {}
        self.old_model: torch.nn.Module | None = None
        self._seen: set[int] = set()

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        replays = [p for p in strategy.plugins if hasattr(p, "storage_policy")]
        if len(replays) > 1:
            raise ValueError(f"{len(replays)} replay plugins ({', '.join(type(p).__name__ for p in replays)}): each "
                             "replaces the other's batches and updates its own memory; keep one")
        owned = getattr(strategy, "storage_policy", None) is self.storage
        if not owned and not any(p.storage_policy is self.storage for p in replays):
            warnings.warn("BalancedFinetunePlugin: nothing replays its memory during training; add "
                          "ReplayPlugin(storage.max_size, storage_policy=storage) or use strategies.EEIL",
                          stacklevel=2)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.old_model = frozen_copy(strategy.model) if self._seen and self.epochs > 0 else None

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        old = sorted(self._seen)
        new = sorted(experience_classes(strategy.experience) - self._seen)
        self._seen |= experience_classes(strategy.experience)
        self.storage.post_adapt(strategy, strategy.experience)
        if not old or self.epochs <= 0:
            return
        x, y = self.storage.tensors()
        self.last_counts = self.storage.counts()
        self.finetune(strategy, x, y, old, new)
        self.old_model = None

    def epochs_for(self, rows: int, batch_size: int) -> int:
        """Epochs of fine-tuning on ``rows`` memory rows: ``epochs``, or more to reach ``min_steps`` steps."""
        steps_per_epoch = -(-rows // batch_size)
        return max(self.epochs, -(-self.min_steps // steps_per_epoch))

    def finetune(self, strategy: Any, x: torch.Tensor, y: torch.Tensor, old: list[int], new: list[int]) -> None:
        model, device = strategy.model, strategy.device
        new_teacher = frozen_copy(model) if new else None
        base_lr = strategy.optimizer.param_groups[0]["lr"]
        opt = torch.optim.SGD(model.parameters(), lr=base_lr * self.lr_factor, momentum=0.9,
                              weight_decay=strategy.optimizer.param_groups[0].get("weight_decay", 0.0))
        bs = min(self.batch_size or strategy.train_mb_size, len(x))
        x, y = x.to(device), y.to(device)
        model.train()
        for epoch in range(self.epochs_for(len(x), bs)):
            order = torch.randperm(len(x), generator=self.generator).to(device)
            sums = {"loss": 0.0, "distill_old": 0.0, "distill_new": 0.0}
            for start in range(0, len(x), bs):
                idx = order[start : start + bs]
                xb = x[idx] if self.augment is None else self.augment(x[idx], self.generator)
                logits = mask_logits(model(xb), self._seen)
                kd_old = teacher_term(self.old_model, old, xb, logits, self.temperature) \
                    if self.old_model is not None else logits.sum() * 0.0
                kd_new = teacher_term(new_teacher, new, xb, logits, self.temperature) \
                    if new_teacher is not None else logits.sum() * 0.0
                loss = F.cross_entropy(logits, y[idx]) + self.distill_weight * (kd_old + kd_new)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for key, value in (("loss", loss), ("distill_old", kd_old), ("distill_new", kd_new)):
                    sums[key] += value.item() * len(idx)
            self.history.append({"epoch": epoch + 1, **{k: v / len(x) for k, v in sums.items()}})


def eeil_plugins(storage: ClassMemoryBuffer, *, temperature: float = 2.0, distill_weight: float = 1.0,
                 finetune_epochs: int = 10, finetune_lr_factor: float = 0.1, finetune_batch_size: int | None = None,
                 finetune_min_steps: int = 0, augment: Augment | None = None,
                 seed: int = 0) -> list[SupervisedPlugin]:
    """EEIL's mask, cross-distillation and balanced fine-tuning (plus, with ``augment``, the augmentation of
    training and fine-tuning batches) for any supervised strategy, in any order.

    No replay: add ``ReplayPlugin(storage.max_size, storage_policy=storage)`` once, or use :class:`EEIL`.
    """
    plugins: list[SupervisedPlugin] = [TrainAugmentPlugin(augment, seed)] if augment is not None else []
    return plugins + [SeenClassMask(), CrossDistillationPlugin(temperature, distill_weight),
                      BalancedFinetunePlugin(storage, finetune_epochs, finetune_lr_factor, finetune_batch_size,
                                             temperature, distill_weight, seed, finetune_min_steps, augment)]


class EEIL(SupervisedTemplate):
    """EEIL on Avalanche's ``SupervisedTemplate``: replay of new data + memory, cross-distillation, balanced
    fine-tuning with temporary distillation of the new classes (module docstring).

    ``storage_policy``: a :class:`~strategies.class_memory.ClassMemoryBuffer` (default: EEIL's herding,
    ``HerdingMemory(mem_size, mem_per_class)``); ``mem_size``, when given with a policy, must equal its
    ``max_size``.  ``batch_size_mem``: memory rows per mini-batch (default ``train_mb_size``).
    ``mask_unseen``: mask logits of classes not seen yet (a head sized for the whole stream).  ``augment``: the
    augmentation of every training and fine-tuning batch (:class:`TrainAugmentPlugin`), none by default.  The remaining
    arguments are Avalanche's, keyword-only as Avalanche asks of strategies.  ``storage_policy``, ``distillation`` and ``finetuning`` are public for logging.
    """

    def __init__(self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 criterion: Any = None, storage_policy: ClassMemoryBuffer | None = None,
                 mem_size: int | None = None, mem_per_class: int | None = None, batch_size_mem: int | None = None,
                 temperature: float = 2.0, distill_weight: float = 1.0, finetune_epochs: int = 30,
                 finetune_lr_factor: float = 0.1, finetune_batch_size: int | None = None,
                 finetune_min_steps: int = 0, augment: Augment | None = None, mask_unseen: bool = True,
                 seed: int = 0, train_mb_size: int = 1, train_epochs: int = 1, eval_mb_size: int | None = None,
                 device: str | torch.device = "cpu", plugins: Sequence[SupervisedPlugin] | None = None,
                 evaluator: Any = default_evaluator, eval_every: int = -1, **base_kwargs: Any) -> None:
        from strategies.exemplar_storage import HerdingMemory

        if storage_policy is None:
            storage_policy = HerdingMemory(mem_size or 2000, mem_per_class, seed)
        elif mem_size is not None and mem_size != storage_policy.max_size:
            raise ValueError(f"mem_size={mem_size} differs from the storage policy's max_size="
                             f"{storage_policy.max_size}; give one of them")
        elif mem_per_class is not None and mem_per_class != storage_policy.mem_per_class:
            raise ValueError(f"mem_per_class={mem_per_class} differs from the storage policy's "
                             f"({storage_policy.mem_per_class}); set it on the policy")
        replays = [type(p).__name__ for p in plugins or () if hasattr(p, "storage_policy")]
        if replays:
            raise ValueError(f"EEIL replays its own storage_policy; remove {', '.join(replays)} from plugins (it "
                             "would replay a second memory and replace EEIL's batches)")
        self.storage_policy = storage_policy
        self.batch_size_mem = batch_size_mem
        self.distillation = CrossDistillationPlugin(temperature, distill_weight)
        self.finetuning = BalancedFinetunePlugin(storage_policy, finetune_epochs, finetune_lr_factor,
                                                 finetune_batch_size, temperature, distill_weight, seed,
                                                 finetune_min_steps, augment)
        own: list[SupervisedPlugin] = [SeenClassMask()] if mask_unseen else []
        own += [TrainAugmentPlugin(augment, seed)] if augment is not None else []
        own += [self.distillation, self.finetuning]
        super().__init__(model=model, optimizer=optimizer,
                         criterion=criterion if criterion is not None else torch.nn.CrossEntropyLoss(),
                         train_mb_size=train_mb_size, train_epochs=train_epochs, eval_mb_size=eval_mb_size,
                         device=device, plugins=[*own, *(plugins or [])], evaluator=evaluator,
                         eval_every=eval_every, **base_kwargs)

    def train(self, experiences: Any, eval_streams: Any = None, **kwargs: Any) -> Any:
        """Avalanche's ``train``; a list of experiences is checked against the memory budget before any trains."""
        if isinstance(experiences, Iterable):
            experiences = list(experiences)
            self.storage_policy.check_stream(experiences, self)
        return super().train(experiences, eval_streams, **kwargs)

    def _before_training_exp(self, **kwargs: Any) -> None:
        self.storage_policy.check_experience(self.experience, self)  # before this experience trains
        super()._before_training_exp(**kwargs)

    def make_train_dataloader(self, num_workers: int = 0, shuffle: bool = True, pin_memory: bool | None = None,
                              persistent_workers: bool = False, drop_last: bool = False, **kwargs: Any) -> None:
        """New data alone on the first experience, then ``train_mb_size`` new + ``batch_size_mem`` memory rows."""
        from avalanche.benchmarks.utils.data_loader import ReplayDataLoader

        memory = self.storage_policy.buffer
        if len(memory) == 0:
            return super().make_train_dataloader(num_workers, shuffle, pin_memory, persistent_workers, drop_last,
                                                 **kwargs)
        args = self._obtain_common_dataloader_parameters(num_workers=num_workers, shuffle=shuffle,
                                                         pin_memory=pin_memory, drop_last=drop_last)
        args.pop("batch_size", None)
        self.dataloader = ReplayDataLoader(self.adapted_dataset, memory, oversample_small_tasks=True,
                                           batch_size=self.train_mb_size,
                                           batch_size_mem=self.batch_size_mem or self.train_mb_size,
                                           task_balanced_dataloader=False, **args)

    def _after_training_exp(self, **kwargs: Any) -> None:
        """Update the memory with the model after stage (1), then the plugins (fine-tuning, metrics) run."""
        self.storage_policy.post_adapt(self, self.experience)
        super()._after_training_exp(**kwargs)
