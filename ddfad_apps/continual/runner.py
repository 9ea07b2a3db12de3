"""One class-incremental run: the :class:`strategies.EEIL` strategy with a chosen replay memory.

``run_cicl(splits, "distilled", seed, CICLConfig.preset("fast"), 5)`` builds the seeded class-incremental
benchmark, a network whose head covers every class of the stream (unseen classes masked), the memory's storage
policy (checked against the whole stream - budget, inputs per class, shapes - before anything trains) and the
EEIL strategy, then trains experience by experience and evaluates on the test data of the classes seen so far.  It returns plain JSON-able results: the accuracy after each experience, the per-experience
accuracy matrix, final accuracy and forgetting.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from tqdm.auto import tqdm

from ddfad_apps.continual.benchmarks import class_order, feature_benchmark
from ddfad_apps.features.dataset import FeatureSplits

@dataclass
class CICLConfig:
    """The EEIL recipe and the memory settings shared by every memory kind of a comparison."""

    model: str = "convnet"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"width": 32})
    epochs: int = 6
    lr: float = 0.01
    batch_size: int = 64
    weight_decay: float = 5e-4
    temperature: float = 2.0
    finetune_epochs: int = 6
    finetune_lr_factor: float = 0.1
    # Balanced fine-tuning takes at least this many steps (BalancedFinetunePlugin.min_steps): counted in epochs
    # alone it vanished for small memories (1 clip per class: 6 steps).  FSDD, 3 seeds, docs/continual.md:
    # herding 34.0 -> 54.1 % at 1 per class, 69.8 -> 83.2 % at 5; unchanged at 20 (where 6 epochs are >= 24 steps)
    finetune_min_steps: int = 100
    # Augment every training and fine-tuning batch (new and memory rows) with the evaluation protocol's
    # AudioAugment, as EEIL trains with augmentation (strategies.eeil.TrainAugmentPlugin).  FSDD, 3 seeds, 1 clip
    # per class: herding 55.1 -> 70.7 %, DM 52.6 -> 76.4 %; 5 per class: herding 83.2 -> 91.1 %, DM 86.6 -> 94.0 %
    augment: bool = True
    mem_per_class: int | None = 20
    mem_size: int | None = None
    distill_method: str = "dm"
    distill_preset: str = "fast"
    distill_init: str = "herding"
    distill_context: bool = False  # distil a new class against the memory's other classes (DistilledMemory)
    distill_steps: str = "scale_free"  # how DM and MTT move the memory's clips (DistilledMemory's ``steps``)
    distill_overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> "CICLConfig":
        """``fast`` (a shared 2-core CPU): ConvNet width 32, 6 + 6 epochs (fine-tuning >= 100 steps), batches augmented (both
        presets), memory distilled by DM fast starting
        from the herding clips (MTT fast took 5-7 min per experience there and made a worse memory; DM from random
        clips replayed worse than DM from herding ones, see docs/continual.md); ``paper``: width 128, EEIL's
        40 + 30 epochs, memory distilled by MTT with the paper's settings (random start, a GPU)."""
        if name == "fast":
            base = cls()
        elif name == "paper":
            base = cls(model_kwargs={"width": 128}, epochs=40, finetune_epochs=30, distill_method="mtt",
                       distill_preset="paper", distill_init="random")
        else:
            raise ValueError(f"unknown preset {name!r}; use 'fast' or 'paper'")
        return replace(base, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_memory(kind: str, cfg: CICLConfig, num_classes: int, seed: int, device: torch.device | str):
    """The storage policy of ``kind`` (a key of :data:`strategies.MEMORIES`) for a stream of ``num_classes``.

    Its budget is ``cfg.mem_size`` (default ``mem_per_class x num_classes``); without ``cfg.mem_per_class`` the
    quota shrinks as classes arrive (``mem_size // seen classes``).  An impossible budget raises
    :class:`strategies.MemoryBudgetError` here."""
    from ddfad_apps.distill.presets import SYNTHETIC_METHODS
    from strategies import MEMORIES, DistilledMemory

    if kind not in MEMORIES:
        raise ValueError(f"unknown memory {kind!r}; use one of {', '.join(MEMORIES)}")
    if cfg.mem_size is None and cfg.mem_per_class is None:
        raise ValueError("give mem_per_class or mem_size")
    size = cfg.mem_size if cfg.mem_size is not None else cfg.mem_per_class * num_classes
    memory = MEMORIES[kind]
    if issubclass(memory, DistilledMemory):
        # coreset "distillation" (random/herding/kcenter) has no settings, so no start to choose
        overrides = {}
        if cfg.distill_method in SYNTHETIC_METHODS:
            overrides = {"init": cfg.distill_init, **cfg.distill_overrides}
        # the distillation network is the CL network (MTT's student must match its experts, which it trains)
        return memory(size, cfg.mem_per_class, cfg.distill_method, cfg.distill_preset, overrides=overrides,
                      model=cfg.model, model_kwargs=cfg.model_kwargs, device=device, seed=seed,
                      num_classes=num_classes, context=cfg.distill_context, steps=cfg.distill_steps)
    return memory(size, cfg.mem_per_class, seed, num_classes=num_classes)


def forgetting(matrix: list[list[float | None]]) -> float:
    """Average forgetting: for each experience but the last, best earlier accuracy minus final accuracy."""
    final = matrix[-1]
    drops = []
    for j in range(len(final) - 1):
        earlier = [row[j] for row in matrix[:-1] if row[j] is not None]
        if earlier and final[j] is not None:
            drops.append(max(earlier) - final[j])
    return sum(drops) / len(drops) if drops else 0.0


def run_cicl(splits: FeatureSplits, memory: str, seed: int, cfg: CICLConfig, num_experiences: int,
             device: torch.device | str = "cpu", logger: Any = None, progress: bool = True) -> dict[str, Any]:
    """Train EEIL with ``memory`` over a ``num_experiences``-step class-incremental stream; return results.

    ``logger`` is an Avalanche logger (e.g. :class:`strategies.MLflowLogger`) receiving the evaluation metrics.
    """
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from ddfad_apps.distill.augment import AudioAugment
    from ddfad_apps.models import build_model
    from ddfad_apps.training import seed_everything
    from strategies import EEIL

    started = time.perf_counter()
    train, test = splits.train, splits.test
    bench = feature_benchmark(train, test, num_experiences, seed)
    storage = make_memory(memory, cfg, train.num_classes, seed, device)
    storage.check_stream(bench.train_stream)  # budget, clips per class and shapes, before anything trains
    seed_everything(seed)
    model = build_model(cfg.model, train.num_classes, train.input_shape, **cfg.model_kwargs)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loss_metrics(epoch=True),
                                 loggers=[logger] if logger is not None else [])
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    strategy = EEIL(model=model, optimizer=optimizer, criterion=torch.nn.CrossEntropyLoss(), storage_policy=storage,
                    temperature=cfg.temperature, finetune_epochs=cfg.finetune_epochs,
                    finetune_lr_factor=cfg.finetune_lr_factor, finetune_min_steps=cfg.finetune_min_steps,
                    augment=AudioAugment() if cfg.augment else None, seed=seed,
                    train_mb_size=cfg.batch_size, train_epochs=cfg.epochs, eval_mb_size=512, device=device, evaluator=evaluator)
    curve: list[float] = []
    matrix: list[list[float | None]] = []
    seconds: list[float] = []
    bar = tqdm(bench.train_stream, desc=f"{memory} seed {seed}", disable=not progress, leave=False)
    with warnings.catch_warnings():
        # Avalanche 0.6 warns about its own deprecations (ExemplarsBuffer.update) on every experience
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="avalanche")
        for t, exp in enumerate(bar):
            t0 = time.perf_counter()
            strategy.train(exp)
            res = strategy.eval(bench.test_stream[: t + 1])
            seconds.append(round(time.perf_counter() - t0, 2))
            curve.append(float(res["Top1_Acc_Stream/eval_phase/test_stream/Task000"]
                               if "Top1_Acc_Stream/eval_phase/test_stream/Task000" in res
                               else res["Top1_Acc_Stream/eval_phase/test_stream"]))
            row: list[float | None] = [None] * num_experiences
            for j in range(t + 1):
                key = next(k for k in res if k.startswith("Top1_Acc_Exp/eval_phase/test_stream")
                           and k.endswith(f"Exp{j:03d}"))
                row[j] = float(res[key])
            matrix.append(row)
            bar.set_postfix(acc=f"{curve[-1]:.3f}")
    order = class_order(train.num_classes, seed)
    return {
        "memory": memory, "seed": seed, "num_experiences": num_experiences,
        "class_order": [train.classes[c] for c in order],
        "classes_per_experience": [len(e.classes_in_this_experience) for e in bench.train_stream],
        "accuracy_curve": curve, "accuracy_matrix": matrix, "final_accuracy": curve[-1],
        "average_incremental_accuracy": sum(curve) / len(curve), "forgetting": forgetting(matrix),
        "memory_per_class": storage.counts(), "memory_size": sum(storage.counts().values()),
        "distillations": getattr(storage, "results", []), "experience_seconds": seconds,
        "seconds": round(time.perf_counter() - started, 2),
    }
