"""EEIL as an Avalanche strategy: replay owned once, cross-distillation from experience 2, balanced fine-tuning.

A user's own tiny MLP on a generated stream of flat vectors (6 classes, 3 experiences), so each test runs in
about a second and nothing here depends on the toolkit's networks or on audio.
"""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin

from strategies import (
    EEIL,
    BalancedFinetunePlugin,
    HerdingMemory,
    MemoryBudgetError,
    RandomMemory,
    eeil_plugins,
)
from strategies.avalanche_data import tensor_dataset

DIM, PER_CLASS = 8, 20


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def vector_stream(num_classes: int = 6, per_exp: int = 2, seed: int = 0):
    """A class-incremental Avalanche benchmark of ``DIM``-vectors, class ``c`` centred on ``2 * e_c``."""
    from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark

    g = torch.Generator().manual_seed(seed)

    def split(n: int):
        y = torch.arange(num_classes).repeat_interleave(n)
        x = torch.randn(len(y), DIM, generator=g) * 0.5
        x[torch.arange(len(y)), y % DIM] += 2.0
        return tensor_dataset(x, y)

    data = {"train": split(PER_CLASS), "test": split(5)}
    return class_incremental_benchmark(data, class_order=list(range(num_classes)), num_classes_per_exp=[per_exp] * (num_classes // per_exp))


def mlp(num_classes: int = 6) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(DIM, 16), torch.nn.ReLU(), torch.nn.Linear(16, num_classes))


class BatchRecorder(SupervisedPlugin):
    """Labels of every training mini-batch, with the experience it belongs to and the memory then replayed."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, torch.Tensor]] = []
        self.epoch_batches: list[tuple[int, int]] = []
        self._n = 0

    def before_training_epoch(self, strategy, **kwargs) -> None:
        self._n = 0

    def before_forward(self, strategy, **kwargs) -> None:
        self.batches.append((strategy.experience.current_experience, strategy.mb_y.clone()))
        self._n += 1

    def after_training_epoch(self, strategy, **kwargs) -> None:
        self.epoch_batches.append((strategy.experience.current_experience, self._n))


def eeil(storage, recorder: BatchRecorder | None = None, **changes) -> EEIL:
    from avalanche.training.plugins import EvaluationPlugin

    model = mlp()
    args = {"storage_policy": storage, "train_mb_size": 8, "batch_size_mem": 4, "train_epochs": 2,
            "finetune_epochs": 3, "plugins": [recorder] if recorder else [], "evaluator": EvaluationPlugin()}
    args.update(changes)
    return EEIL(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), **args)


def test_eeil_replays_memory_once_per_batch_distils_from_experience_two_and_finetunes_balanced() -> None:
    bench = vector_stream()
    storage = HerdingMemory(12, 2)
    recorder = BatchRecorder()
    strategy = eeil(storage, recorder)
    for exp in bench.train_stream:
        strategy.train(exp)

    # replay: experience 0 sees only its own classes; later batches are 8 new rows + exactly 4 memory rows
    for t, y in recorder.batches:
        new = {2 * t, 2 * t + 1}
        n_new = sum(int(v) in new for v in y)
        if t == 0:
            assert n_new == len(y) <= 8
        else:
            assert len(y) - n_new == 4 and 0 < n_new <= 8, (t, y.tolist())
            assert set(y.tolist()) - new <= set(range(2 * t))  # memory rows are old classes only
    # one loader per epoch, as long as the new data alone (40 rows / 8): no second replay loader
    assert {n for _, n in recorder.epoch_batches} == {5}
    assert storage.updates == 3 and storage.counts() == {c: 2 for c in range(6)}

    # the cross-distillation term is active from the second experience on, and not zero there
    experiences = {t for t, _ in strategy.distillation.terms}
    assert experiences == {1, 2} and max(v for _, v in strategy.distillation.terms) > 0
    # balanced fine-tuning after experiences 2 and 3 (3 epochs each) on the balanced memory, with both the old
    # classes' distillation and EEIL's temporary distillation of the new classes
    history = strategy.finetuning.history
    assert len(history) == 6 and strategy.finetuning.last_counts == {c: 2 for c in range(6)}
    assert all(h["distill_new"] > 0 and h["distill_old"] >= 0 for h in history)
    assert any(h["distill_old"] > 0 for h in history)


def test_eeil_refuses_a_second_replay_and_the_plugins_carry_none() -> None:
    from avalanche.training.plugins import ReplayPlugin

    storage = RandomMemory(12, 2)
    with pytest.raises(ValueError, match="EEIL replays its own storage_policy; remove ReplayPlugin"):
        eeil(storage, plugins=[ReplayPlugin(12, storage_policy=storage)])
    with pytest.raises(ValueError, match="mem_size=10 differs"):
        eeil(storage, mem_size=10)
    assert not any(isinstance(p, ReplayPlugin) for p in eeil_plugins(storage))


def test_eeil_plugins_with_one_user_replay_update_memory_once_and_two_replays_are_refused() -> None:
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

    bench = vector_stream()
    storage = RandomMemory(12, 2)
    # the replay plugin listed *after* the fine-tuning: no order to respect
    plugins = [*eeil_plugins(storage, finetune_epochs=1), ReplayPlugin(12, storage_policy=storage)]
    model = mlp()
    naive = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), train_mb_size=8,
                  plugins=plugins, evaluator=EvaluationPlugin())
    for exp in bench.train_stream:
        naive.train(exp)
    assert storage.updates == 3 and storage.counts() == {c: 2 for c in range(6)}
    finetune = next(p for p in plugins if isinstance(p, BalancedFinetunePlugin))
    assert len(finetune.history) == 2

    twice = [*eeil_plugins(storage), ReplayPlugin(12, storage_policy=storage), ReplayPlugin(12)]
    model = mlp()
    naive = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), plugins=twice,
                  evaluator=EvaluationPlugin())
    with pytest.raises(ValueError, match="2 replay plugins"):
        naive.train(bench.train_stream[0])


def test_eeil_budget_error_before_any_training() -> None:
    bench = vector_stream()
    recorder = BatchRecorder()
    strategy = eeil(RandomMemory(10, 2), recorder)
    before = [p.clone() for p in strategy.model.parameters()]
    with pytest.raises(MemoryBudgetError, match=r"experience 2: random memory of 10 inputs cannot hold 2 per class "
                                                r"for 6 classes \(2 x 6 = 12\)"):
        strategy.train(bench.train_stream)  # the whole stream: checked before the first experience trains
    assert not recorder.batches and all(torch.equal(a, b) for a, b in zip(before, strategy.model.parameters()))

    few = eeil(HerdingMemory(200, 30), recorder)  # 30 per class asked, 20 rows per class
    with pytest.raises(MemoryBudgetError, match="asks for 30 inputs per class but class 0 of experience 0 has only 20"):
        few.train(bench.train_stream[0])
    assert not recorder.batches
