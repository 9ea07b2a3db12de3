"""Storage policies as Avalanche users expect: merging re-appearing classes, task labels, dtypes, early errors.

Generated streams of small tensors (the policies must work on any stream), a 3-iteration DM for the distilled
memory, so the file runs in seconds.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch

from ddfad_apps.distill import NotEnoughClipsError, method_settings
from strategies import DistilledMemory, HerdingMemory, MemoryBudgetError, RandomMemory
from strategies.avalanche_data import dataset_tensors, tensor_dataset

SHAPE = (3, 8, 8)
TINY_DM = method_settings("dm", "fast", iterations=3, batch_real=8)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def experience(classes: list[int], index: int, per_class: int = 12, offset: float = 0.0, task: int = 0,
               dtype: torch.dtype = torch.float32, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> SimpleNamespace:
    """One experience of ``per_class`` inputs per class, class ``c`` around ``c + offset``."""
    g = torch.Generator().manual_seed(seed + index)
    y = torch.tensor(classes).repeat_interleave(per_class)
    x = torch.rand((len(y), *shape), generator=g) + (y.float() + offset).view(-1, *[1] * len(shape))
    if not dtype.is_floating_point:
        x = (x * 20).to(dtype)
    return SimpleNamespace(dataset=tensor_dataset(x, y, task), current_experience=index)


def distilled(max_size: int, mem_per_class: int | None, **kw) -> DistilledMemory:
    return DistilledMemory(max_size, mem_per_class, method="dm", settings=TINY_DM, model_kwargs={"width": 8}, **kw)


def rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r.flatten().tolist()) for r in x}


@pytest.mark.parametrize("memory", [RandomMemory, HerdingMemory])
def test_reappearing_class_merges_its_new_data_into_a_real_memory(memory) -> None:
    storage = memory(30, 4)
    first, again = experience([0, 1], 0), experience([1, 2], 1, offset=100.0)
    storage.post_adapt(None, first)
    old = storage.memory[1].clone()
    storage.post_adapt(None, again)
    new_rows = rows(dataset_tensors(again.dataset)[0][:12])  # class 1's rows of the second experience
    kept = rows(storage.memory[1])
    assert storage.counts() == {0: 4, 1: 4, 2: 4}
    assert kept <= rows(old) | new_rows and kept & new_rows  # chosen among old memory + new data, new data used


def test_reappearing_class_is_redistilled_from_its_new_data_and_old_memory() -> None:
    storage = distilled(30, 3)
    storage.post_adapt(None, experience([0, 1], 0))
    before = storage.memory[1].clone()
    storage.post_adapt(None, experience([1, 2], 1, offset=100.0))
    assert [r["classes"] for r in storage.results] == [[0, 1], [1, 2]]
    # the new data (around 101) pulled class 1's synthetic rows far from the old ones (around 1)
    assert storage.memory[1].mean() - before.mean() > 10
    assert storage.counts() == {0: 3, 1: 3, 2: 3}


@pytest.mark.parametrize("make", [lambda: RandomMemory(20, 2), lambda: HerdingMemory(20, 2),
                                  lambda: distilled(20, 2)], ids=["random", "herding", "distilled"])
def test_memory_keeps_each_class_task_label(make) -> None:
    storage = make()
    storage.post_adapt(None, experience([0, 1], 0, task=3))
    storage.post_adapt(None, experience([2, 3], 1, task=5))
    buffer = storage.buffer
    labels = dict(zip((int(v) for v in buffer.targets), (int(t) for t in buffer.targets_task_labels)))
    assert labels == {0: 3, 1: 3, 2: 5, 3: 5}
    assert sorted({int(t) for t in buffer.targets_task_labels}) == [3, 5]


@pytest.mark.parametrize("memory", [RandomMemory, HerdingMemory])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_real_memories_keep_integer_inputs_exactly(memory, dtype) -> None:
    storage = memory(20, 3)
    exp = experience([0, 1], 0, dtype=dtype)
    storage.post_adapt(None, exp)
    x, _ = storage.tensors()
    assert x.dtype == dtype and rows(x) <= rows(dataset_tensors(exp.dataset)[0])
    assert dataset_tensors(storage.buffer)[0].dtype == dtype


def test_distilled_memory_of_integer_inputs_says_it_stays_float() -> None:
    storage = distilled(20, 3)
    with pytest.warns(UserWarning, match="torch.uint8; the memory is distilled and kept as float32"):
        storage.post_adapt(None, experience([0, 1], 0, dtype=torch.uint8))
    x, _ = storage.tensors()
    assert x.dtype == torch.float32 and not torch.equal(x, x.round())  # not cast back to integers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per memory, not on every experience
        storage.post_adapt(None, experience([2], 1, dtype=torch.uint8))
    assert storage.counts() == {0: 3, 1: 3, 2: 3}


def test_budget_errors_name_the_numbers_before_any_update() -> None:
    with pytest.raises(MemoryBudgetError, match=r"cannot hold 2 per class for 6 classes \(2 x 6 = 12\); give "
                                                r"mem_size >= 12 or mem_per_class <= 1"):
        RandomMemory(10, 2, num_classes=6)  # the stream's class count known: refused at construction
    with pytest.raises(MemoryBudgetError, match="too small for 6 classes"):
        HerdingMemory(5, num_classes=6)
    storage = RandomMemory(10, 2)
    stream = [experience([0, 1], 0), experience([2, 3], 1), experience([4, 5], 2)]
    with pytest.raises(MemoryBudgetError, match="experience 2: random memory of 10 inputs cannot hold 2 per class"):
        storage.check_stream(stream)
    assert storage.updates == 0 and not storage.memory
    # shrinking quota: 12 // 2 = 6 per class at the first step, more than the 5 clips class 0 has
    short = [experience([0, 1], 0, per_class=5)]
    with pytest.raises(MemoryBudgetError, match="asks for 6 inputs per class but class 0 of experience 0 has only 5"):
        RandomMemory(12).check_stream(short)
    with pytest.raises(NotEnoughClipsError):  # still what the engine's callers catch
        RandomMemory(12).post_adapt(None, short[0])


def test_shrinking_quota_follows_mem_size() -> None:
    storage = RandomMemory(13)
    assert storage.check_stream([experience([0, 1], 0), experience([2, 3, 4], 1)]) == [6, 2]
    storage.post_adapt(None, experience([0, 1], 0))
    assert storage.counts() == {0: 6, 1: 6}
    storage.post_adapt(None, experience([2, 3, 4], 1))
    assert storage.counts() == {c: 2 for c in range(5)} and len(storage.buffer) == 10  # 5 classes x 2 within 13


def test_distilled_memory_refuses_shapes_its_network_cannot_take_before_training() -> None:
    from avalanche.training.plugins import EvaluationPlugin

    from strategies import EEIL

    flat = [experience([0, 1], 0, shape=(16,)), experience([2, 3], 1, shape=(16,))]
    model = torch.nn.Sequential(torch.nn.Linear(16, 4))
    strategy = EEIL(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    storage_policy=distilled(8, 2), evaluator=EvaluationPlugin())
    with pytest.raises(ValueError, match=r"distils with the toolkit's 'convnet' network \(not your strategy's "
                                         r"Sequential\), and inputs of shape \(16,\) are not \(C, H, W\)"):
        strategy.storage_policy.check_stream(flat, strategy)
    with pytest.raises(ValueError, match="cannot take inputs of shape"):
        distilled(8, 2).check_inputs(torch.zeros(3, 1, 1))  # too small for the ConvNet's pooling
    HerdingMemory(8, 2).check_stream(flat)  # real exemplars store any shape


def test_model_herding_start_is_eeils_exemplars_in_the_trained_model_not_the_raw_inputs() -> None:
    """init='model-herding' starts the distilled memory from the clips HerdingMemory keeps (herding in the
    strategy model's embedding); 'herding' from herding in the raw inputs.  With lr_img 0 the start is the memory."""
    from ddfad_apps.distill.coreset import MODEL_HERDING

    torch.manual_seed(0)
    agent = SimpleNamespace(model=torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten()))
    still = {"iterations": 1, "batch_real": 8, "lr_img": 0.0}
    exp = experience([0, 1], 0)
    kept = {}
    for name, storage in {"eeil": HerdingMemory(20, 3),
                          MODEL_HERDING: DistilledMemory(20, 3, method="dm", overrides={**still, "init": MODEL_HERDING},
                                                          model_kwargs={"width": 8}),
                          "herding": DistilledMemory(20, 3, method="dm", overrides={**still, "init": "herding"},
                                                     model_kwargs={"width": 8})}.items():
        storage.post_adapt(agent, exp)
        kept[name] = {c: rows(storage.memory[c]) for c in (0, 1)}
    assert kept[MODEL_HERDING] == kept["eeil"]
    assert kept["herding"] != kept["eeil"]  # raw-input herding picks other clips here
    with pytest.raises(ValueError, match="starts from herding in the strategy's model, and no strategy model"):
        DistilledMemory(20, 3, method="dm", overrides={**still, "init": MODEL_HERDING},
                        model_kwargs={"width": 8}).post_adapt(None, exp)
