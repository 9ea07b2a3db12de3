"""NAS evidence: --n-trials refused above the distinct architectures, the portable ground-truth cache (a second run
trains nothing; a different recipe misses), the budget-convergence correlation, and the anytime comparison
(proxy search vs TPE + Hyperband under one CPU budget) end to end at tiny size.

Data: a tiny class-folder set of real FSDD clips (3 digits x 6 clips, ``fsdd_folder``); the space is a 4-model
ConvNet space registered in the test, so each architecture trains in well under a second on one thread.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from ddfad_apps.features.dataset import load_features
from ddfad_apps.nas import objective
from ddfad_apps.nas.proxies import proxy_spec
from ddfad_apps.nas.report import ArchResult, budget_convergence, format_convergence
from ddfad_apps.nas.truths import TruthCache, compute_truths
from search_spaces import SearchSpace, register_space

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_SPACE = SearchSpace("tiny4-test", "convnet", {"width": (8, 16), "pooling": ("none", "maxpooling")},
                         fixed={"depth": 1, "norm": "instancenorm", "activation": "relu"})


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    register_space(TINY_SPACE, replace=True)


@pytest.fixture
def tiny(fsdd_folder) -> Path:
    return fsdd_folder(("0", "1", "2"), 6)


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of the one training function of trials, ground truths and anytime searches."""
    calls: list[str] = []
    real = objective.train_and_score

    def counting(spec, *args, **kwargs):
        calls.append(spec.name)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(objective, "train_and_score", counting)
    return calls


def test_n_trials_above_the_distinct_architectures_is_refused(tmp_path: Path) -> None:
    from ddfad_apps.cli.main import cli

    bad = CliRunner().invoke(cli, ["nas", "--sampler", "tpe", "--n-trials", "30", "--sample", "24",
                                   "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2, bad.output
    assert "--n-trials 30" in bad.output and "24 distinct architectures" in bad.output
    bad = CliRunner().invoke(cli, ["nas", "--sampler", "random", "--n-trials", "721", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "721" in bad.output and "720 distinct" in bad.output
    assert not (tmp_path / "o").exists()  # refused before any work


def test_ground_truth_cache_hits_across_runs_and_is_keyed_by_recipe(tiny: Path, tmp_path: Path,
                                                                     trainings: list[str]) -> None:
    splits = load_features(str(tiny), progress=False)
    configs = list(TINY_SPACE.configs())
    spec = proxy_spec("full", epochs=1)
    first, trained = compute_truths(TruthCache(str(tiny), splits.train, splits.test, spec), TINY_SPACE, configs,
                                    splits.train, splits.test, progress=False)
    assert trained == 4 and len(trainings) == 4
    # a second run (a new cache object, as a new process would make) trains nothing and returns the same numbers
    again, trained = compute_truths(TruthCache(str(tiny), splits.train, splits.test, spec), TINY_SPACE, configs,
                                    splits.train, splits.test, progress=False)
    assert trained == 0 and len(trainings) == 4
    assert {a: r.accuracy for a, r in again.items()} == {a: r.accuracy for a, r in first.items()}
    # portable: the file names no path; copied to another machine's cache folder it is found there
    path = TruthCache(str(tiny), splits.train, splits.test, spec).path
    assert str(tmp_path) not in path.read_text()
    elsewhere = tmp_path / "other-machine"
    elsewhere.mkdir()
    shutil.copy(path, elsewhere / path.name)
    moved = TruthCache("digits", splits.train, splits.test, spec, root=elsewhere)
    assert moved.path == elsewhere / path.name
    assert set(moved.get_many(TINY_SPACE, configs)) == set(first)
    # keyed by recipe: another epoch count is another cache
    longer = TruthCache(str(tiny), splits.train, splits.test, proxy_spec("full", epochs=2))
    assert longer.path != path and longer.get_many(TINY_SPACE, configs) == {}
    _, trained = compute_truths(longer, TINY_SPACE, configs[:1], splits.train, splits.test, progress=False)
    assert trained == 1 and len(trainings) == 5


def test_nas_job_reuses_cached_ground_truths_in_a_new_run_folder(tiny: Path, tmp_path: Path,
                                                                  trainings: list[str]) -> None:
    from ddfad_apps.jobs.nas import NASSearchJob, run_nas_job

    def run(out: str):
        job = NASSearchJob(proxies=("early-stopping-short",), dataset=str(tiny), space=TINY_SPACE.name, sample=2,
                           truth_epochs=1, out=tmp_path / out, tracking_uri=f"sqlite:///{tmp_path / 'ml.db'}")
        return run_nas_job(job, progress=False, say=lambda _: None)

    first = run("one")
    assert first.report["truth_trained"] == 2 and trainings.count("full") == 2
    second = run("two")  # a fresh journal: only the cache can know the ground truths
    assert second.report["truth_trained"] == 0 and second.report["truth_cached"] == 2
    assert trainings.count("full") == 2 and trainings.count("early-stopping-short") == 4
    assert second.report["trials"]["full"].keys() == first.report["trials"]["full"].keys()


def test_a_joined_worker_does_the_work_and_the_job_reuses_it(tiny: Path, tmp_path: Path,
                                                             trainings: list[str]) -> None:
    """``join_nas_job`` works on the job's studies like one of its workers but writes no report and logs no run;
    the job started after it (here: on the same folder) trains nothing the joiner already trained."""
    from mlflow.tracking import MlflowClient

    from ddfad_apps.cli.main import cli
    from ddfad_apps.jobs.nas import NASSearchJob, join_nas_job, run_nas_job

    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    job = NASSearchJob(proxies=("early-stopping-short",), dataset=str(tiny), space=TINY_SPACE.name, sample=3,
                       truth_epochs=1, out=tmp_path / "nas", tracking_uri=uri)
    lines: list[str] = []
    assert join_nas_job(job, progress=False, say=lines.append) == 3
    assert trainings.count("early-stopping-short") == 3 and trainings.count("full") == 3
    assert not (tmp_path / "nas" / "report.json").exists() and any("joining the nas job" in x for x in lines)
    client = MlflowClient(uri)
    assert client.get_experiment_by_name(job.experiment) is None  # the joiner logged nothing
    result = run_nas_job(job, progress=False, say=lambda _: None)
    assert len(trainings) == 6  # every trial and ground truth came from the joiner's work
    assert result.report["truth_cached"] == 3 and len(result.report["trials"]["early-stopping-short"]) == 3
    assert set(result.report["trials"]["full"]) == set(result.report["sample"])
    args = ["nas", "--join", "--proxy", "early-stopping-short", "--dataset", str(tiny), "--space", TINY_SPACE.name,
            "--sample", "3", "--truth-epochs", "1", "--out", str(tmp_path / "nas"), "--no-progress"]
    joined = CliRunner().invoke(cli, args)  # the job is complete: a late joiner finds nothing left to train
    assert joined.exit_code == 0, joined.output
    assert "joined: every study of the job is complete (3 ground truths)" in joined.output and len(trainings) == 6
    bad = CliRunner().invoke(cli, [*args, "--strategy", "proxy-grid"])
    assert bad.exit_code == 2 and "drop --join" in bad.output


def _results(values) -> dict[str, ArchResult]:
    return {f"a{i}": ArchResult(float(v), 1.0, "COMPLETE") for i, v in enumerate(values)}


def test_budget_convergence_correlation_on_synthetic_ground_truths() -> None:
    rng = np.random.default_rng(0)
    longer = rng.uniform(0.5, 1.0, 60)
    settled = longer + rng.normal(0, 0.01, 60)  # the ranking has stopped moving (up to small noise)
    moving = rng.permutation(longer)  # unrelated to the longer budget's ranking
    ok = budget_convergence(_results(settled), _results(longer), seed=1)
    bad = budget_convergence(_results(moving), _results(longer), seed=1)
    c = ok.correlations["all"]
    assert c.n == 60 and c.spearman == pytest.approx(stats.spearmanr(settled, longer).statistic)
    assert c.spearman > 0.95 and c.spearman_low > 0.9
    b = bad.correlations["all"]
    assert b.spearman_low < 0 < b.spearman_high  # no ranking agreement: the interval holds zero
    text = format_convergence(ok, "5 epochs", "10 epochs")
    assert "over 60 architectures" in text and f"{c.spearman:+.3f}" in text


def test_anytime_comparison_end_to_end(tiny: Path, tmp_path: Path, trainings: list[str]) -> None:
    from ddfad_apps.cli.main import cli

    budget = 3.0
    out = tmp_path / "any"
    result = CliRunner().invoke(cli, [
        "nas", "--strategy", "proxy-grid", "--strategy", "proxy-tpe", "--strategy", "hyperband",
        "--proxy", "random", "--proxy", "early-stopping-short", "--dataset", str(tiny), "--space", TINY_SPACE.name,
        "--cpc", "2", "--epochs", "2", "--truth-epochs", "3", "--budget-seconds", str(budget), "--seeds", "2",
        "--target", "0.95", "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path / 'ml.db'}",
        "--experiment", "anytime-test", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "anytime.json").read_text())
    assert (out / "anytime.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    strategies = {"proxy-grid/random", "proxy-grid/early-stopping-short", "proxy-tpe/random",
                  "proxy-tpe/early-stopping-short", "hyperband"}
    assert set(report["strategies"]) == strategies
    truth = {a: r["accuracy"] for a, r in report["truth"].items()}
    assert len(truth) == 4 and report["best_truth"] == max(truth.values())
    evaluated = 0
    for name, entry in report["strategies"].items():
        assert set(entry["seeds"]) == {"0", "1"}, name
        for seed in entry["seeds"].values():
            curve = seed["curve"]
            assert all(0 < p["seconds"] <= budget for p in curve)  # nothing counted past the budget
            assert seed["spent"] <= budget + 1e-9
            assert all(b["truth"] >= a["truth"] for a, b in zip(curve, curve[1:]))  # best so far never drops
            assert all(truth[p["arch"]] == p["truth"] for p in curve)
            assert [p["seconds"] for p in curve] == sorted(p["seconds"] for p in curve)
            evaluated += seed["evaluated"]
            reached = [p["seconds"] for p in curve if p["truth"] >= report["target"]]
            assert seed["time_to_target"] == (reached[0] if reached else None)
    assert evaluated > 0
    # each architecture is trained once per recipe and replayed for the other seeds and strategies
    assert trainings.count("random") <= 4 and trainings.count("early-stopping-short") <= 4
    assert "reached" in result.output and "hyperband" in result.output
    _check_anytime_run(f"sqlite:///{tmp_path / 'ml.db'}", report, strategies)


def _check_anytime_run(uri: str, report: dict, strategies: set[str]) -> None:
    """The comparison's one MLflow run: settings as params, each strategy's summary as metrics, files as artifacts."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("anytime-test").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["mode"] == "anytime"
    assert run.data.params["budget_seconds"] == "3.0" and run.data.params["features.kind"] == "fd_mfcc"
    metrics = run.data.metrics
    assert metrics["best_truth"] == pytest.approx(report["best_truth"])
    for name in strategies:
        entry = report["strategies"][name]
        reached = sum(s["time_to_target"] is not None for s in entry["seeds"].values())
        assert metrics[f"{name}.reached_seeds"] == reached
        finals = [s["curve"][-1]["truth"] for s in entry["seeds"].values() if s["curve"]]
        if finals:
            assert metrics[f"{name}.final_truth_mean"] == pytest.approx(sum(finals) / len(finals))
        if entry["time_to_target"]:
            assert metrics[f"{name}.time_to_target"] == pytest.approx(entry["time_to_target"]["mean"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"anytime.json", "anytime.png", "anytime.txt"}
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "anytime.json")).read_text())
    assert logged["strategies"].keys() == report["strategies"].keys() and logged["target"] == report["target"]


def test_anytime_refuses_bad_settings(tmp_path: Path) -> None:
    from ddfad_apps.jobs.errors import JobSettingsError
    from ddfad_apps.jobs.nas import NASAnytimeJob, run_nas_anytime_job

    with pytest.raises(JobSettingsError, match="sample"):
        run_nas_anytime_job(NASAnytimeJob(sample=None, out=tmp_path), progress=False)
    with pytest.raises(JobSettingsError, match="unknown strategies"):
        run_nas_anytime_job(NASAnytimeJob(strategies=("bogus",), out=tmp_path), progress=False)


@pytest.fixture
def inputs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple, int]]:
    """(recipe, training set's input shape, the network's first convolution's input channels) of every training."""
    import torch

    seen: list[tuple[str, tuple, int]] = []
    real = objective.train_and_score

    def recording(spec, space, config, model, train, *args, **kwargs):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        seen.append((spec.name, tuple(train.input_shape), conv.in_channels))
        return real(spec, space, config, model, train, *args, **kwargs)

    monkeypatch.setattr(objective, "train_and_score", recording)
    return seen


def test_nas_feature_choice_reaches_the_networks_and_keys(tiny: Path, tmp_path: Path, inputs: list) -> None:
    """--feature mfcc: every network (anytime search, ground truth, a study's worker) takes 1-channel MFCCs; the
    ground-truth cache and the study names differ from FD-MFCC's, so nothing trained on other features is reused."""
    from ddfad_apps.cli.main import cli
    from ddfad_apps.features import FeatureConfig
    from ddfad_apps.nas.ground_truth import ground_truth_job
    from ddfad_apps.nas.job import NASJob
    from ddfad_apps.nas.runner import run_study
    from ddfad_apps.nas.study import default_storage

    out = tmp_path / "mfcc"
    result = CliRunner().invoke(cli, [
        "nas", "--strategy", "proxy-grid", "--proxy", "early-stopping-short", "--feature", "mfcc",
        "--duration", "0.64", "--dataset", str(tiny), "--space", TINY_SPACE.name, "--truth-epochs", "1", "--budget-seconds", "2",
        "--seeds", "1", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "anytime.json").read_text())
    assert report["features"]["kind"] == "mfcc" and report["duration"] == 0.64
    assert {name for name, _, _ in inputs} >= {"early-stopping-short", "full"}
    assert {(shape[0], channels) for _, shape, channels in inputs} == {(1, 1)}
    # the ground-truth cache is keyed by the data's content: FD-MFCC features of the same clips miss it
    spec = proxy_spec("full", epochs=1)
    mfcc = load_features(str(tiny), config=FeatureConfig(kind="mfcc"), duration=0.64, progress=False)
    fd = load_features(str(tiny), duration=0.64, progress=False)
    assert report["truth_cache"] == TruthCache(str(tiny), mfcc.train, mfcc.test, spec).path.name
    fd_cache = TruthCache(str(tiny), fd.train, fd.test, spec)
    assert fd_cache.path.name != report["truth_cache"] and fd_cache.get_many(TINY_SPACE, TINY_SPACE.configs()) == {}
    # a study's workers load the job's features; another feature kind is another study (and ground-truth study)
    inputs.clear()
    archs = [TINY_SPACE.key(c) for c in list(TINY_SPACE.configs())[:2]]
    jobs = {kind: NASJob(storage=default_storage(tmp_path / "study"), study=f"s-{kind}", dataset=str(tiny),
                         proxy=proxy_spec("early-stopping-short"), space=TINY_SPACE.name, archs=archs,
                         feature=kind) for kind in ("fd_mfcc", "mfcc")}
    assert ground_truth_job(jobs["mfcc"]).study != ground_truth_job(jobs["fd_mfcc"]).study
    longer = ground_truth_job(replace(jobs["fd_mfcc"], duration=0.64)).study
    assert longer not in (ground_truth_job(jobs["fd_mfcc"]).study, ground_truth_job(jobs["mfcc"]).study)
    results, _ = run_study(jobs["mfcc"], 1, tmp_path / "study", progress=False, echo=lambda _: None)
    assert set(results) == set(archs) and [c for _, _, c in inputs] == [1, 1]
    assert NASJob.from_json(jobs["mfcc"].to_json()).feature == "mfcc"  # the worker's job file carries it
