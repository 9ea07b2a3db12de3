"""Class-incremental learning: storage policies, EEIL plugins, the MLflow logger, benchmarks and ``ddfad-apps cicl``.

Most tests use small random-tensor streams (the storage policies must work on non-audio inputs anyway) and
width-8 networks, so they run in seconds; the CLI tests use a tiny folder data set of real FSDD clips and the
slow test a real FSDD subset with MTT.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from strategies.avalanche_data import dataset_tensors, tensor_dataset
from ddfad_apps.continual.benchmarks import class_order, feature_benchmark
from ddfad_apps.continual.runner import CICLConfig, forgetting, make_memory, run_cicl
from ddfad_apps.distill import NotEnoughClipsError, method_settings
from ddfad_apps.distill.dm import SCALE_FREE_DM_STEPS
from ddfad_apps.jobs import CICLJob
from ddfad_apps.features.dataset import FeatureSet, FeatureSplits
from strategies import (
    BalancedFinetunePlugin,
    CrossDistillationPlugin,
    DistilledMemory,
    HerdingMemory,
    MemoryBudgetError,
    MLflowLogger,
    RandomMemory,
    SeenClassMask,
    distillation_loss,
    eeil_plugins,
)

SHAPE = (3, 8, 8)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)


def random_stream(classes_per_exp: list[list[int]], per_class: int = 12, seed: int = 0) -> list[SimpleNamespace]:
    """Experiences of random ``(3, 8, 8)`` tensors whose class ``c`` has mean ``c`` (so classes are separable)."""
    g = torch.Generator().manual_seed(seed)
    exps = []
    for i, classes in enumerate(classes_per_exp):
        y = torch.tensor(classes).repeat_interleave(per_class)
        x = torch.randn((len(y), *SHAPE), generator=g) + y.view(-1, 1, 1, 1).float()
        exps.append(SimpleNamespace(dataset=tensor_dataset(x, y), current_experience=i))
    return exps


TINY_DM = method_settings("dm", "fast", iterations=3, batch_real=8)


def _memories(max_size: int, mem_per_class: int | None) -> list:
    return [RandomMemory(max_size, mem_per_class), HerdingMemory(max_size, mem_per_class),
            DistilledMemory(max_size, mem_per_class, method="dm", settings=TINY_DM, model_kwargs={"width": 8})]


# -- storage policies ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [0, 1, 2], ids=["random", "herding", "distilled"])
def test_memory_keeps_mem_per_class_within_budget(kind: int) -> None:
    storage = _memories(30, 5)[kind]
    stream = random_stream([[0, 1], [2, 3], [4]])
    seen: set[int] = set()
    for exp in stream:
        storage.post_adapt(None, exp)
        seen |= set(exp.dataset.targets.uniques)
        assert storage.counts() == {c: 5 for c in sorted(seen)}
        assert len(storage.buffer) == 5 * len(seen) <= storage.max_size
        x, y = dataset_tensors(storage.buffer)
        assert x.shape[1:] == SHAPE and sorted(y.unique().tolist()) == sorted(seen)


def test_distilled_memory_is_synthetic_and_real_memories_are_real() -> None:
    exp = random_stream([[0, 1]])[0]
    real_x, _ = dataset_tensors(exp.dataset)
    rows = {tuple(r.flatten()[:5].tolist()) for r in real_x}
    for storage in _memories(10, 5):
        storage.post_adapt(None, exp)
        x, _ = storage.tensors()
        is_real = [tuple(r.flatten()[:5].tolist()) in rows for r in x]
        if isinstance(storage, DistilledMemory):
            assert not any(is_real) and storage.results[0]["method"] == "dm"
        else:
            assert all(is_real)


def test_memory_without_mem_per_class_shares_budget_and_keeps_herding_prefix() -> None:
    storage = HerdingMemory(12)
    first, second = random_stream([[0, 1], [2, 3]])
    storage.post_adapt(None, first)
    assert storage.counts() == {0: 6, 1: 6}
    before = storage.memory[0].clone()
    storage.post_adapt(None, second)
    assert storage.counts() == {0: 3, 1: 3, 2: 3, 3: 3}
    assert torch.equal(storage.memory[0], before[:3])  # herding order: the trimmed set is the first 3 picks


def test_memory_budget_too_small_is_a_clear_error() -> None:
    storage = RandomMemory(8, mem_per_class=4)
    first, second = random_stream([[0, 1], [2]])
    storage.post_adapt(None, first)
    with pytest.raises(MemoryBudgetError, match="cannot hold 4 per class for 3 classes"):
        storage.post_adapt(None, second)
    with pytest.raises(MemoryBudgetError, match="too small for 3 classes"):
        RandomMemory(2).post_adapt(None, random_stream([[0, 1, 2]])[0])


def test_class_with_too_few_inputs_is_a_clear_error() -> None:
    exp = random_stream([[0, 1]], per_class=3)[0]
    for storage in _memories(20, 5):
        with pytest.raises(NotEnoughClipsError, match="class 0 of experience 0 has only 3"):
            storage.post_adapt(None, exp)


def test_herding_uses_the_trained_model_embedding() -> None:
    calls = []

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8 * 8 * 3, 4)

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return x.flatten(1)[:, :4]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.flatten(1))

    storage = HerdingMemory(10, 5)
    storage.post_adapt(SimpleNamespace(model=Net()), random_stream([[0, 1]])[0])
    assert calls and storage.counts() == {0: 5, 1: 5}


# -- EEIL pieces ----------------------------------------------------------------------------------------------------
def test_distillation_loss_zero_when_equal_positive_otherwise() -> None:
    logits = torch.randn(6, 4)
    assert distillation_loss(logits, logits.clone()).abs().item() < 1e-6
    other = logits + torch.randn(6, 4)
    new = other.clone().requires_grad_(True)
    loss = distillation_loss(new, logits, temperature=2.0)
    assert loss.item() > 0
    loss.backward()
    assert new.grad is not None and new.grad.abs().sum() > 0
    # the temperature softens: T^2 * KL at T=2 differs from T=1
    assert not torch.isclose(distillation_loss(other, logits, 1.0), distillation_loss(other, logits, 2.0))


def test_seen_class_mask_masks_unseen_logits() -> None:
    mask = SeenClassMask()
    strategy = SimpleNamespace(experience=random_stream([[1, 3]])[0], mb_output=torch.zeros(2, 5))
    mask.before_training_exp(strategy)
    mask.after_forward(strategy)
    assert (strategy.mb_output[:, [1, 3]] == 0).all() and (strategy.mb_output[:, [0, 2, 4]] < -1e3).all()


def test_cross_distillation_only_after_first_experience() -> None:
    kd = CrossDistillationPlugin()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, 4))
    first, second = random_stream([[0, 1], [2, 3]])
    strategy = SimpleNamespace(model=model, experience=first)
    kd.before_training_exp(strategy)
    assert kd.old_model is None
    kd.after_training_exp(strategy)
    strategy.experience = second
    kd.before_training_exp(strategy)
    assert kd.old_classes == [0, 1] and kd.old_model is not model
    x = torch.randn(5, *SHAPE)
    assert kd.loss(x, model(x)).abs().item() < 1e-6  # same weights: nothing to distil yet
    with torch.no_grad():
        model[1].weight.add_(0.5 * torch.randn_like(model[1].weight))
    assert kd.loss(x, model(x)).item() > 0


def test_balanced_finetune_updates_its_memory_and_uses_it_balanced(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = RandomMemory(20, 5)
    plugin = BalancedFinetunePlugin(storage, epochs=1)
    seen = []
    monkeypatch.setattr(plugin, "finetune", lambda strategy, x, y, old, new: seen.append((y.clone(), old, new)))
    first, second = random_stream([[0, 1], [2, 3]], per_class=20)
    strategy = SimpleNamespace(experience=first, model=None)
    plugin.after_training_exp(strategy)
    assert not seen and storage.counts() == {0: 5, 1: 5}  # nothing to balance yet, but the memory is filled
    strategy.experience = second
    plugin.after_training_exp(strategy)  # no ReplayPlugin ran first: the plugin updates the memory itself
    storage.post_adapt(None, second)  # a replay plugin's later update of the same experience is a no-op
    (labels, old, new), = seen
    assert torch.bincount(labels).tolist() == [5, 5, 5, 5]  # new data (20 per class) is not used: balanced
    assert (old, new) == ([0, 1], [2, 3]) and storage.updates == 2


def _toy_benchmark():
    """A real Avalanche class-incremental benchmark (4 toy classes, 2 experiences) over random tensors."""
    splits = _feature_splits()
    return feature_benchmark(splits.train, splits.test, 2, seed=0)


def _naive(model: torch.nn.Module, plugins: list, loggers: list, epochs: int = 1):
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin

    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loss_metrics(epoch=True),
                                 loggers=loggers)
    return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                 criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=epochs, eval_mb_size=64, plugins=plugins, evaluator=evaluator)


def test_distilled_memory_in_one_line_with_avalanche_replay_on_a_non_audio_stream() -> None:
    from avalanche.training.plugins import ReplayPlugin

    from ddfad_apps.models import build_model

    model = build_model("convnet", 4, SHAPE, width=8, depth=2)
    storage = DistilledMemory(8, 2, method="dm", settings=TINY_DM, model_kwargs={"width": 8, "depth": 2})
    strategy = _naive(model, [ReplayPlugin(8, storage_policy=storage)], [])
    for exp in _toy_benchmark().train_stream:
        strategy.train(exp)
    assert storage.counts() == {0: 2, 1: 2, 2: 2, 3: 2} and len(storage.results) == 2


def test_eeil_plugins_with_a_replay_plugin_train_a_stream_and_finetune(tmp_path: Path) -> None:
    from avalanche.training.plugins import ReplayPlugin

    from ddfad_apps.models import build_model

    model = build_model("convnet", 4, SHAPE, width=8, depth=2)
    storage = HerdingMemory(8, 2)
    plugins = eeil_plugins(storage, finetune_epochs=2)
    finetune = plugins[-1]
    strategy = _naive(model, [ReplayPlugin(8, storage_policy=storage), *plugins], [])
    for exp in _toy_benchmark().train_stream:
        strategy.train(exp)
    assert finetune.last_counts == {0: 2, 1: 2, 2: 2, 3: 2} and len(finetune.history) == 2
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in finetune.history)
    assert storage.updates == 2


def test_mlflow_logger_records_avalanche_metrics(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from ddfad_apps.models import build_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLflowLogger(experiment="cl-test", run_name="naive", tracking_uri=uri, params={"memory": "none"})
    strategy = _naive(build_model("convnet", 4, SHAPE, width=8, depth=2), [], [logger])
    bench = _toy_benchmark()
    for exp in bench.train_stream:
        strategy.train(exp)
    evaluated = strategy.eval(bench.test_stream)
    logger.log_single_metric("weird name{x}", torch.tensor(0.5), 3)
    logger.close()
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cl-test").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["memory"] == "none"
    history = client.get_metric_history(run.info.run_id, "Loss_Epoch/train_phase/train_stream")
    assert len(history) == 2
    stream_acc = next(v for k, v in evaluated.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream"))
    assert run.data.metrics["Top1_Acc_Stream/eval_phase/test_stream"] == pytest.approx(float(stream_acc))
    assert run.data.metrics["weird name_x_"] == 0.5


# -- benchmarks and runner -----------------------------------------------------------------------------------------
def _feature_splits(num_classes: int = 4, per_class: int = 16, spatial: bool = False) -> FeatureSplits:
    """Toy splits whose class ``c`` has mean ``c``, or with ``spatial`` a bright row ``2c`` (a pattern instance
    norm keeps, unlike a mean)."""
    g = torch.Generator().manual_seed(1)
    sets = []
    for n in (per_class, 4):
        y = torch.arange(num_classes).repeat_interleave(n)
        x = torch.randn((len(y), *SHAPE), generator=g)
        if spatial:
            x[torch.arange(len(y)), 0, 2 * y] += 3.0
        else:
            x = x + y.view(-1, 1, 1, 1).float()
        sets.append(FeatureSet(x, y, [f"c{i}" for i in range(num_classes)], {"dataset": "toy"}))
    return FeatureSplits(sets[0], sets[1], None, None)  # type: ignore[arg-type]


def test_benchmark_class_order_is_seeded_and_covers_all_classes() -> None:
    splits = _feature_splits(5)
    bench = feature_benchmark(splits.train, splits.test, 2, seed=3)
    groups = [sorted(e.classes_in_this_experience) for e in bench.train_stream]
    assert sorted(sum(groups, [])) == list(range(5)) and [len(g) for g in groups] == [2, 3]
    assert [sorted(e.classes_in_this_experience) for e in bench.test_stream] == groups
    assert class_order(5, 3) == class_order(5, 3) and sorted(class_order(5, 3)) == list(range(5))
    assert len({tuple(class_order(5, s)) for s in range(6)}) > 1  # the seed changes the order
    with pytest.raises(ValueError, match="cannot split 5 classes into 6"):
        feature_benchmark(splits.train, splits.test, 6)


def test_forgetting_from_accuracy_matrix() -> None:
    assert forgetting([[1.0, None], [0.6, 0.9]]) == pytest.approx(0.4)
    assert forgetting([[0.8, None, None], [0.9, 0.7, None], [0.5, 0.7, 1.0]]) == pytest.approx((0.4 + 0.0) / 2)


def test_run_cicl_on_toy_features_reports_curves() -> None:
    cfg = CICLConfig.preset("fast", model_kwargs={"width": 8, "depth": 2}, epochs=6, finetune_epochs=4,
                            mem_per_class=3)
    result = run_cicl(_feature_splits(), "random", 0, cfg, 2, progress=False)
    assert len(result["accuracy_curve"]) == 2 and result["memory_size"] == 12
    assert result["accuracy_matrix"][0][1] is None
    # two experiences with equally many test clips: the stream accuracy is the mean over experiences
    assert result["final_accuracy"] == pytest.approx(sum(result["accuracy_matrix"][-1]) / 2)
    assert result["final_accuracy"] > 0.25  # separable toy classes: better than chance


# -- the CLI ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_folder(fsdd_folder) -> Path:
    return fsdd_folder(("0", "1", "2", "3"), 10)


def _cicl(args: list[str]):
    from click.testing import CliRunner

    from ddfad_apps.cli.main import cli

    return CliRunner().invoke(cli, ["cicl", *args])


def test_cicl_cli_runs_logs_and_resumes(tiny_folder: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--dataset", str(tiny_folder), "--memory", "herding,random", "--mem-per-class", "3", "--seeds", "2",
            "--epochs", "1", "--finetune-epochs", "1", "--tracking-uri", uri, "--out", str(tmp_path / "out"),
            "--no-progress", "--experiment", "cicl-test"]
    result = _cicl(args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "herding" in result.output and "final acc" in result.output and "skipped" not in result.output
    out = tmp_path / "out" / "digits"
    saved = sorted(p.relative_to(out).as_posix() for p in out.rglob("seed*.json"))
    assert saved == ["herding/seed0.json", "herding/seed1.json", "random/seed0.json", "random/seed1.json"]
    assert (out / "accuracy_curves.png").stat().st_size > 1000 and "±" in (out / "table.txt").read_text()
    # the first memory against the others, paired by seed (a win is only claimed where the interval excludes 0)
    assert "interval of herding - random" in (out / "table.txt").read_text()
    first = json.loads((out / "herding" / "seed0.json").read_text())
    assert first["memory_per_class"] == {"0": 3, "1": 3, "2": 3, "3": 3} and len(first["accuracy_curve"]) == 2

    (out / "random" / "seed1.json").unlink()  # as if interrupted during the last job
    again = _cicl(args)
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert again.output.count("skipped") == 3 and "random seed 1: final accuracy" in again.output

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("cicl-test").experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names.count("cicl-digits") == 2 and names.count("digits-random-seed1") == 2
    child = next(r for r in runs if r.info.run_name == "digits-herding-seed0")
    assert len(client.get_metric_history(child.info.run_id, "seen_class_accuracy")) == 2
    assert any(k.startswith("Top1_Acc_Exp") for k in child.data.metrics)
    parent = next(r for r in runs if r.info.run_name == "cicl-digits")
    assert "herding.final_accuracy_mean" in parent.data.metrics


def test_cicl_cli_clear_errors(tiny_folder: Path, tmp_path: Path) -> None:
    base = ["--dataset", str(tiny_folder), "--no-progress", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
            "--out", str(tmp_path / "out")]
    result = _cicl([*base, "--mem-per-class", "50"])
    assert result.exit_code != 0 and "asks for 50 inputs per class but class" in result.output
    assert "of experience 0 has only" in result.output
    result = _cicl([*base, "--mem-per-class", "3", "--mem-size", "5"])
    assert result.exit_code != 0 and "memory of 5 inputs cannot hold 3 per class for" in result.output
    result = _cicl([*base, "--mem-per-class", "2,50", "--memory", "random"])  # a sweep: every value before any run
    assert result.exit_code != 0 and "asks for 50 inputs per class" in result.output
    assert not (tmp_path / "out").exists()
    result = _cicl([*base, "--mem-per-class", "2,x"])
    assert result.exit_code == 2 and "expected integers separated by commas" in result.output
    result = _cicl([*base, "--model", "convnet,bogus"])
    assert result.exit_code == 2 and "unknown model bogus" in result.output
    result = _cicl([*base, "--experiences", "9"])
    assert result.exit_code != 0 and "cannot split 4 classes into 9" in result.output
    result = _cicl([*base, "--memory", "herding,bogus"])
    assert result.exit_code != 0 and "unknown memory bogus" in result.output


def test_cicl_mem_size_alone_gives_a_shrinking_quota(tiny_folder: Path, tmp_path: Path) -> None:
    args = ["--dataset", str(tiny_folder), "--memory", "random", "--mem-size", "10", "--seeds", "1", "--epochs", "1",
            "--finetune-epochs", "1", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--out",
            str(tmp_path / "out"), "--no-progress"]
    result = _cicl(args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    saved = json.loads((tmp_path / "out" / "digits" / "random" / "seed0.json").read_text())
    # 4 classes in 2 experiences: 10 // 2 = 5 each after the first, 10 // 4 = 2 each after the second
    assert saved["memory_per_class"] == {"0": 2, "1": 2, "2": 2, "3": 2} and saved["memory_size"] == 8
    assert saved["settings"]["config"]["mem_size"] == 10 and saved["settings"]["config"]["mem_per_class"] is None


def test_cicl_sweep_over_memory_sizes_and_networks_writes_figure_and_json(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--dataset", str(tiny_folder), "--memory", "herding,random", "--mem-per-class", "1,3", "--model",
            "convnet,resnet18", "--seeds", "1", "--epochs", "1", "--finetune-epochs", "1", "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}", "--out", str(out), "--no-progress"]
    result = _cicl(args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    folder = out / "digits"
    sweep = json.loads((folder / "sweep.json").read_text())["entries"]
    keys = sorted((e["model"], e["mem_per_class"], e["memory"]) for e in sweep)
    assert keys == sorted((m, k, mem) for m in ("convnet", "resnet18") for k in (1, 3) for mem in ("herding", "random"))
    for e in sweep:
        run = json.loads((folder / f"{e['model']}-mpc{e['mem_per_class']}" / e["memory"] / "seed0.json").read_text())
        assert run["memory_per_class"] == {str(c): e["mem_per_class"] for c in range(4)}
        assert run["settings"]["config"]["model"] == e["model"]
        assert e["final_accuracy"] == [run["final_accuracy"]] and 0.0 <= e["final_accuracy_mean"] <= 1.0
        assert e["final_accuracy_mean"] == pytest.approx(run["final_accuracy"])
    assert (folder / "memory_sweep.png").stat().st_size > 1000
    assert (folder / "resnet18-mpc3" / "accuracy_curves.png").stat().st_size > 1000
    assert result.output.count("final acc (%)") == 4  # one Table IV per (network, size)
    assert "resnet18, 3 per class" in (folder / "table.txt").read_text()


@pytest.mark.slow
def test_distilled_mtt_memory_on_real_fsdd_subset(fsdd_splits) -> None:
    splits = fsdd_splits

    def take(fs: FeatureSet, n: int) -> FeatureSet:
        idx = torch.cat([fs.class_indices(c)[:n] for c in range(4)])
        sub = fs.subset(idx)
        return FeatureSet(sub.features, sub.labels, fs.classes[:4], sub.meta)

    small = FeatureSplits(take(splits.train, 60), take(splits.test, 30), splits.stats, splits.config)
    cfg = CICLConfig.preset("fast", epochs=4, finetune_epochs=4, mem_per_class=5, distill_method="mtt",
                            distill_overrides={"iterations": 10})
    result = run_cicl(small, "distilled", 0, cfg, 2, progress=False)
    assert [d["method"] for d in result["distillations"]] == ["mtt", "mtt"]
    assert all(d["lr"] is not None for d in result["distillations"])
    assert result["memory_per_class"] == {0: 5, 1: 5, 2: 5, 3: 5}
    assert result["final_accuracy"] > 0.3  # chance is 0.25; 10 MTT iterations make a weak memory (docs/continual.md)


def test_fast_memory_starts_from_herding_clips_and_paper_from_random_ones() -> None:
    fast = make_memory("distilled", CICLConfig.preset("fast"), 4, 0, "cpu").settings_for(20)
    assert fast.init == "herding" and fast.iterations == 300
    tuned = make_memory("distilled", CICLConfig.preset("fast", distill_overrides={"iterations": 7}), 4, 0, "cpu")
    assert tuned.settings_for(20).init == "herding" and tuned.settings_for(20).iterations == 7
    paper = make_memory("distilled", CICLConfig.preset("paper"), 4, 0, "cpu")
    assert paper.method == "mtt" and paper.settings_for(20).mtt.init == "random"
    kcenter = make_memory("distilled", CICLConfig.preset("fast", distill_method="kcenter"), 4, 0, "cpu")
    assert kcenter.settings_for(20) is None


def test_memory_moves_its_clips_by_the_scale_free_rule_unless_told_otherwise() -> None:
    """DM's absolute steps, set on ConvNet, threw VGG11's memory out of the data's range (MEMORY_STEP_RULE): the
    memory's DM and MTT use the scale-free rule by default, in the plugin and in cicl; 'absolute' stays a choice,
    and an unknown rule fails when the memory is built, not after an experience has trained."""
    dm = DistilledMemory(200, 20).settings_for(20)
    assert (dm.steps, dm.lr_img) == ("scale_free", SCALE_FREE_DM_STEPS["lr_img"])
    assert DistilledMemory(200, 20, steps="absolute").settings_for(20).steps == "absolute"
    assert DistilledMemory(200, 20, method="mtt", steps="absolute").settings_for(20).mtt.steps == "absolute"
    chosen = DistilledMemory(200, 20, overrides={"steps": "absolute"}).settings_for(20)  # as a --variant gives it
    assert (chosen.steps, chosen.lr_img) == ("absolute", method_settings("dm", "fast", 20).lr_img)
    user = DistilledMemory(200, 20, overrides={"lr_img": 0.5}).settings_for(20)
    assert (user.steps, user.lr_img) == ("scale_free", 0.5)  # the user's override wins over the rule's rate
    assert make_memory("distilled", CICLConfig.preset("fast"), 4, 0, "cpu").settings_for(20).steps == "scale_free"
    cicl = CICLJob(dataset="fsdd", distill_steps="absolute").config()
    assert make_memory("distilled", cicl, 4, 0, "cpu").settings_for(20).steps == "absolute"
    assert CICLJob(dataset="fsdd").config().distill_steps != cicl.distill_steps  # so a saved run is not reused
    with pytest.raises(ValueError, match="unknown step rule 'sideways'"):
        DistilledMemory(200, 20, steps="sideways")
    # so is a start the method cannot make (each method's settings check theirs when made)
    with pytest.raises(ValueError, match="unknown init 'dms'; use one of random, herding, dm"):
        DistilledMemory(200, 20, method="mtt", overrides={"init": "dms"})
    with pytest.raises(ValueError, match="unknown init 'dm'; use one of real, random, herding, noise"):
        DistilledMemory(200, 20, method="dm", overrides={"init": "dm"})
    assert DistilledMemory(200, 20, method="mtt", overrides={"init": "model-herding"}).starts_from_model


def test_mtt_memory_keeps_the_standard_experts_on_small_experiences() -> None:
    # an experience of 540 clips would get the engine's small-set experts; CL memory must not (class docstring)
    mtt = make_memory("distilled", CICLConfig.preset("fast", distill_method="mtt"), 4, 0, "cpu").settings_for(20)
    assert mtt.mtt.init == "herding" and mtt.mtt.max_start_epoch == 5
    assert (mtt.experts.epochs, mtt.experts.batch_size) == (8, 64)
    # at 10 per class too, where the whole-data fast preset starts from the DM set: the memory keeps its measured start
    ten = DistilledMemory(200, 10, method="mtt")
    assert ten.settings_for(10).mtt.init == "herding" and method_settings("mtt", "fast", 10).mtt.init == "dm"
    assert DistilledMemory(200, 10, method="mtt", overrides={"init": "dm"}).settings_for(10).mtt.init == "dm"
    plain = DistilledMemory(200, 20, method="mtt").settings_for(20)  # the one-line plugin with MTT
    assert (plain.experts.epochs, plain.experts.batch_size) == (8, 64)
    # a short matching budget on the fast preset (longer matching replayed worse: MEMORY_MTT_ITERATIONS)
    assert plain.mtt.iterations == 10 and plain.mtt.steps == "scale_free"
    assert DistilledMemory(200, 20, method="mtt", overrides={"iterations": 40}).settings_for(20).mtt.iterations == 40
    assert DistilledMemory(200, 20, method="mtt", preset="paper").settings_for(20).mtt.iterations == 5000
    with pytest.raises(ValueError, match="either settings or overrides"):
        DistilledMemory(8, 2, method="dm", settings=TINY_DM, overrides={"iterations": 1})
    assert DistilledMemory(200, 20).method == "dm"  # the default measures best (scripts/bench_memory.py, issue 12)


def test_context_memory_distils_new_classes_against_the_kept_classes_and_keeps_only_the_new() -> None:
    first, second = random_stream([[0, 1], [2, 3]], per_class=12)
    plain = DistilledMemory(20, 5, method="dm", settings=TINY_DM, model_kwargs={"width": 8})
    context = DistilledMemory(20, 5, method="dm", settings=TINY_DM, model_kwargs={"width": 8}, context=True)
    for storage in (plain, context):
        storage.post_adapt(None, first)
    kept = {c: context.memory[c].clone() for c in (0, 1)}
    x, y = dataset_tensors(second.dataset)
    data, extra = context.distillation_data(x.float(), y, [2, 3])
    assert extra == [0, 1]  # the kept classes, labelled after the new ones
    counts = torch.bincount(data.labels).tolist()
    assert counts[:2] == [12, 12] and counts[2:] == [10, 10]  # 5 kept rows repeated to about a new class's 12
    assert torch.equal(data.features[data.labels == 2][:5], kept[0])
    assert plain.distillation_data(x.float(), y, [2, 3])[1] == []  # off by default: the new classes alone
    context.post_adapt(None, second)
    assert context.results[-1]["context_classes"] == [0, 1] and context.counts() == {c: 5 for c in range(4)}
    for c in (0, 1):  # the kept classes' memory is untouched; their distilled rows are discarded
        assert torch.equal(context.memory[c], kept[c])
    assert CICLConfig.preset("fast", distill_context=True).distill_context
    assert make_memory("distilled", CICLConfig.preset("fast", distill_context=True), 4, 0, "cpu").context


def test_balanced_finetune_takes_at_least_min_steps_on_a_small_memory() -> None:
    from ddfad_apps.models import build_model

    storage = RandomMemory(8, 1)
    plugin = BalancedFinetunePlugin(storage, epochs=2, min_steps=7)
    assert plugin.epochs_for(4, 16) == 7  # one batch an epoch: 7 epochs give the 7 steps
    assert plugin.epochs_for(40, 16) == 3 and plugin.epochs_for(400, 16) == 2  # enough steps: the epochs stand
    assert BalancedFinetunePlugin(storage, epochs=2).epochs_for(4, 16) == 2  # off by default
    model = build_model("convnet", 4, SHAPE, width=8)
    strategy = SimpleNamespace(model=model, device="cpu", train_mb_size=16,
                               optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    for exp in random_stream([[0, 1], [2, 3]]):
        strategy.experience = exp
        plugin.before_training_exp(strategy)
        plugin.after_training_exp(strategy)
    assert [h["epoch"] for h in plugin.history] == list(range(1, 8))  # 4 memory rows, one step an epoch
    assert CICLConfig.preset("fast", finetune_min_steps=5).finetune_min_steps == 5


def test_cicl_table_pairs_the_distilled_memory_with_each_other_by_seed() -> None:
    from ddfad_apps.continual.figures import paired_verdicts

    def runs(accs):
        return [{"seed": s, "final_accuracy": a, "forgetting": 0.0, "average_incremental_accuracy": a}
                for s, a in accs.items()]

    results = {"herding": runs({0: 0.40, 1: 0.50, 2: 0.46}), "distilled": runs({0: 0.50, 1: 0.60, 2: 0.55}),
               "random": runs({0: 0.45, 1: 0.70, 2: 0.41})}
    lines = paired_verdicts(results)
    assert len(lines) == 2 and "distilled beats herding by 9.67 points" in lines[0]  # +10, +10, +9 on the seeds
    assert "indistinguishable at 3 seeds" in lines[1]  # +5, -10, +14: the interval spans zero
    results["random"] = runs({5: 0.1, 6: 0.2})  # other seeds: nothing to pair
    assert len(paired_verdicts(results)) == 1


def test_cicl_leaves_a_run_another_process_holds_for_last_and_then_does_it_once(tiny_folder: Path,
                                                                                 tmp_path: Path) -> None:
    import threading
    import time

    from ddfad_apps.storage.locks import FileLock, lock_path

    out = tmp_path / "out" / "digits"
    held = FileLock(lock_path(out / "herding" / "seed0.json"))  # as a second process running that run would
    held.acquire()
    args = ["--dataset", str(tiny_folder), "--memory", "herding,random", "--mem-per-class", "3", "--seeds", "2",
            "--epochs", "1", "--finetune-epochs", "1", "--finetune-min-steps", "0", "--out", str(tmp_path / "out"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--no-progress"]
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("result", _cicl(args)))
    worker.start()
    others = [out / "herding" / "seed1.json", out / "random" / "seed0.json", out / "random" / "seed1.json"]
    deadline = time.monotonic() + 240
    while not all(p.exists() for p in others) and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.2)
    assert all(p.exists() for p in others)  # the other runs went on while the held one waited
    assert not (out / "herding" / "seed0.json").exists() and worker.is_alive()  # it waits, it does not duplicate
    held.release()
    worker.join(240)
    result = box["result"]
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "herding seed 0: another process is running it; back to it at the end" in result.output
    assert result.output.count("final accuracy") == 4 and (out / "herding" / "seed0.json").exists()
    assert not list(out.rglob("*.lock"))  # the job's own locks are removed with their runs


def test_eeil_augments_training_replay_and_finetuning_batches_but_not_evaluation() -> None:
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from ddfad_apps.models import build_model
    from strategies import EEIL

    seen: list[int] = []

    def run(augment) -> float:
        torch.manual_seed(0)
        model = build_model("convnet", 4, SHAPE, width=8, depth=2)
        strategy = EEIL(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                        storage_policy=HerdingMemory(8, 2), finetune_epochs=2, augment=augment, train_mb_size=16,
                        train_epochs=10, eval_mb_size=64,
                        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
        splits = _feature_splits(spatial=True)
        bench = feature_benchmark(splits.train, splits.test, 2, seed=0)
        for exp in bench.train_stream:
            strategy.train(exp)
        before = len(seen)
        res = strategy.eval(bench.test_stream)
        assert len(seen) == before  # evaluation batches are never augmented
        return next(v for k, v in res.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream"))

    def record(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        seen.append(len(x))
        return x

    assert run(record) == run(None) > 0.9
    assert 16 + 4 in seen  # a second-experience batch: 16 new rows and the 4 memory rows, augmented together
    assert seen.count(8) == 2  # the two fine-tuning epochs over the 8-row balanced memory, one batch each
    assert run(lambda x, g: torch.zeros_like(x)) <= 0.5  # what the network trains on is the augmented batch
    assert isinstance(eeil_plugins(HerdingMemory(8, 2), augment=record)[-1], BalancedFinetunePlugin)


def _script(name: str):
    """scripts/<name>.py loaded as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_cicl_runs_pairs_two_result_folders_by_cell_and_seed(tmp_path: Path, capsys) -> None:
    """scripts/compare_cicl_runs.py pairs runs of two cicl folders by (cell, seed): only the seeds both ran, only
    the cells both ran, and a verdict only where the paired interval excludes zero."""
    def write(folder: Path, memory: str, cell: str, accuracies: dict[int, float], grid: bool = True) -> None:
        for seed, acc in accuracies.items():
            path = (folder / cell if grid else folder) / memory / f"seed{seed}.json"  # one size: no cell folder
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"seed": seed, "final_accuracy": acc, "model": "convnet",
                                        "mem_per_class": int(cell.rsplit("mpc", 1)[1])}))

    a, b = tmp_path / "a" / "fsdd", tmp_path / "b" / "fsdd"
    write(a, "distilled", "convnet-mpc1", {0: 0.80, 1: 0.82, 2: 0.81, 3: 0.5})
    write(b, "herding", "convnet-mpc1", {0: 0.70, 1: 0.71, 2: 0.70}, grid=False)
    write(a, "distilled", "convnet-mpc2", {0: 0.9})  # herding never ran this size: not compared
    module = _script("compare_cicl_runs")
    module.main([f"new={a}:distilled", f"herding={b}:herding"])
    out = capsys.readouterr().out
    assert "convnet-mpc1, seeds 0, 1, 2" in out and "mpc2" not in out
    assert "new beats herding by 10.67 points" in out
    with pytest.raises(SystemExit, match="no random runs"):
        module.main([f"new={a}:distilled", f"random={b}:random"])


def test_probe_memory_oracle_maps_a_sets_clips_to_the_streams_classes_and_normalisation(tmp_path: Path) -> None:
    """scripts/probe_memory_oracle.py: a saved set's clips reach the stream's class index by name (the set's class
    order may differ) and its normalisation is swapped for the stream's; the oracle memory stores exactly those rows
    for each class it is asked for, whatever the experience's own rows."""
    from ddfad_apps.distill.synthetic_set import SyntheticSet
    from ddfad_apps.features.normalize import FeatureStats

    module = _script("probe_memory_oracle")
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(4, 3, 20, 5, generator=g) * 3 + 1
    set_stats = FeatureStats(torch.full((3, 20, 1), 1.0), torch.full((3, 20, 1), 3.0))
    stream_stats = FeatureStats(torch.full((3, 20, 1), 0.5), torch.full((3, 20, 1), 2.0))
    SyntheticSet(set_stats.apply(raw), torch.tensor([0, 0, 1, 1]), ["b", "a"], "mtt", 0.01, set_stats).save(tmp_path / "s")
    splits = SimpleNamespace(train=SimpleNamespace(classes=["a", "b"]), stats=stream_stats)
    rows = module.set_rows(str(tmp_path / "s"), splits)
    assert torch.allclose(rows[1], stream_stats.apply(raw[:2]), atol=1e-5)  # set class "b" is the stream's class 1
    assert torch.allclose(rows[0], stream_stats.apply(raw[2:]), atol=1e-5)
    memory = module.oracle_memory_class()(4, 2, 0, rows=rows, num_classes=2)
    x = torch.zeros(6, 3, 20, 5)
    chosen = memory.select(x, torch.tensor([0, 0, 0, 1, 1, 1]), [1], 2, None)
    assert list(chosen) == [1] and torch.equal(chosen[1], rows[1])
    SyntheticSet(raw, torch.tensor([0, 0, 1, 1]), ["b", "a"], "mtt").save(tmp_path / "bare")
    with pytest.raises(SystemExit, match="no normalisation statistics"):  # nowhere to map its clips from
        module.set_rows(str(tmp_path / "bare"), splits)
    with pytest.raises(SystemExit, match="missing: c"):  # a set made for other classes is refused by name
        module.set_rows(str(tmp_path / "s"), SimpleNamespace(train=SimpleNamespace(classes=["a", "c"]),
                                                             stats=stream_stats))
    out, settings = tmp_path / "probe.json", {"dataset": "ravdess", "mem_per_class": 1, "experiences": 4}
    assert module.record(out, "oracle/seed0", {"final_accuracy": 0.3, "forgetting": 0.1}, settings)
    assert not module.record(out, "oracle/seed0", {"final_accuracy": 0.9}, settings)  # first result kept
    assert module.read_results(out, settings)["oracle/seed0"]["final_accuracy"] == 0.3
    with pytest.raises(SystemExit, match="not .*'mem_per_class': 5"):  # other settings never mixed in
        module.record(out, "oracle/seed1", {"final_accuracy": 0.3}, {**settings, "mem_per_class": 5})
    for key, acc in (("herding/seed0", 0.2), ("oracle/seed1", 0.5), ("herding/seed1", 0.3), ("oracle/seed2", 0.9)):
        module.record(out, key, {"final_accuracy": acc, "forgetting": 0.1}, settings)
    text = module.report(module.read_results(out, settings), ["oracle", "herding"], [0, 1, 2])
    assert "# oracle - herding: +15.00" in text and "(seeds 0, 1)" in text  # seed 2 lacks herding: left out
