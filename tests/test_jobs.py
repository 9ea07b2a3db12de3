"""Each job called from Python (no CLI) on a tiny folder of real FSDD clips: results match what was logged and
written, run folders are complete and reused, and contradictory settings are refused before any work."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from ddfad_apps.jobs import (  # noqa: E402
    CICLJob, DistillJob, EvaluateJob, JobError, JobSettingsError, ReconstructJob, TrainJob, run_cicl_job,
    run_distill_job, run_evaluate_job, run_reconstruct_job, run_train_job,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (building a SQLite store takes seconds); each test reads its own runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def digits(fsdd_folder) -> Path:
    return fsdd_folder(("0", "1", "2"), 6)  # 3 classes x 6 real clips of 0.5 s


def test_train_job_returns_the_network_and_the_accuracy_it_logged(digits: Path, uri: str) -> None:
    from ddfad_apps.features import load_features
    from ddfad_apps.training import predict

    lines: list[str] = []
    job = TrainJob(dataset=str(digits), epochs=2, width=8, depth=2, seed=1, device="cpu", tracking_uri=uri,
                   experiment="jobs-train")
    result = run_train_job(job, progress=False, say=lines.append)

    run = MlflowClient(uri).get_run(result.run_id)
    assert run.info.status == "FINISHED" and result.tracking_uri == uri
    assert run.data.metrics["final_test_accuracy"] == pytest.approx(result.test_accuracy)
    assert run.data.params["model.width"] == "8" and result.model_kwargs == {"width": 8, "depth": 2}
    assert len(result.history) == 2 and any(line.startswith("epoch 2/2") for line in lines)
    # the returned network is the trained one: it scores the reported accuracy on the real test split
    test = load_features(str(digits), progress=False).test
    predicted = predict(result.model, test.features)
    assert result.num_test == len(test) and result.correct == int((predicted == test.labels).sum())
    assert result.test_accuracy == pytest.approx(result.correct / result.num_test)


def test_distill_job_writes_a_complete_folder_and_a_second_run_reuses_it(digits: Path, uri: str, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "dm"
    job = DistillJob(dataset=str(digits), method="dm", cpc=2, iterations=2, eval_seeds=1, eval_epochs=3,
                     out=out, device="cpu", tracking_uri=uri, experiment="jobs-distill")
    first = run_distill_job(job, progress=False, say=lambda line: None)

    assert first.state == "new" and first.out == out and len(first.synthetic) == 6
    for name in ("run.json", "distilled.json", "distilled.safetensors", "evaluation.json", "losses.json",
                 "losses.png", "original_vs_distilled.png", "audio/manifest.json", "audio/index.html"):
        assert (out / name).exists(), name
    assert len(list((out / "audio").rglob("*.wav"))) == 6 and first.audio.audio_dir == out / "audio"
    written = json.loads((out / "evaluation.json").read_text())["convnet"]["mean"]
    assert first.test_accuracy == written == first.evaluation["convnet"]["mean"]
    client = MlflowClient(uri)
    assert client.get_run(first.run_id).data.metrics["test_accuracy_convnet"] == pytest.approx(written)
    assert len(client.get_metric_history(first.run_id, "loss")) == 2

    # The same job again: the folder is complete, the set is reused as it is, nothing is distilled.
    def refuse(*args, **kwargs):
        raise AssertionError("a complete run folder was distilled again")

    monkeypatch.setattr("ddfad_apps.distill.distill", refuse)
    lines: list[str] = []
    second = run_distill_job(job, progress=False, say=lines.append)
    assert second.state == "complete" and second.run_id != first.run_id
    assert torch.equal(second.synthetic.features, first.synthetic.features)
    assert "(already distilled; evaluating again)" in lines[0]
    assert client.get_metric_history(second.run_id, "loss") == []
    assert client.get_run(second.run_id).data.metrics["test_accuracy_convnet"] == pytest.approx(
        second.test_accuracy)

    other = DistillJob(dataset=str(digits), method="dm", cpc=3, iterations=2, out=out, tracking_uri=uri)
    with pytest.raises(JobError, match=r"different run \(differs in: cpc"):
        run_distill_job(other, progress=False, say=lambda line: None)


def test_distill_job_carves_the_validation_part_first_records_it_and_never_distils_from_it(
        digits: Path, uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11: the set is made from the training split less the carved validation part, the carve is recorded
    (run.json, carve.json, MLflow) and the set's networks get their lr from the protocol's selection."""
    import ddfad_apps.distill as distill_module
    from ddfad_apps.evidence import EvalProtocol
    from ddfad_apps.features import load_features

    seen = {}
    real = distill_module.distill

    def spy(train, *args, **kwargs):
        seen["train"] = train
        return real(train, *args, **kwargs)

    monkeypatch.setattr("ddfad_apps.distill.distill", spy)
    out = tmp_path / "herding"
    job = DistillJob(dataset=str(digits), method="herding", cpc=2, eval_seeds=2, eval_epochs=2, lr_grid=(0.01, 0.03),
                     val_fraction=0.2, carve_seed=3, audio=False, out=out, device="cpu", tracking_uri=uri)
    result = run_distill_job(job, progress=False, say=lambda line: None)

    train = load_features(str(digits), progress=False).train
    carved = EvalProtocol(val_fraction=0.2, carve_seed=3).carve(train)
    recorded = {"fit_clips": 12, "val_clips": 3, "val_fraction": 0.2, "carve_seed": 3, "stratified": True}
    assert json.loads((out / "run.json").read_text())["carve"] == recorded == result.carve
    assert json.loads((out / "carve.json").read_text())["val_index"] == carved.val_index

    def rows(t: torch.Tensor) -> set[tuple[float, ...]]:
        return {tuple(r.tolist()) for r in t.flatten(1)}

    assert len(seen["train"]) == len(carved.fit) == 12  # distilled from the fit part only
    assert rows(seen["train"].features).isdisjoint(rows(carved.val.features))
    assert rows(result.synthetic.features) <= rows(carved.fit.features)
    evaluation = json.loads((out / "evaluation.json").read_text())["convnet"]
    assert evaluation["protocol"]["name"] == "lr-grid-on-carved-validation"
    assert sorted(evaluation["val_scores"]) == ["0.01", "0.03"] and evaluation["lr"] in (0.01, 0.03)
    assert evaluation["carve"]["val_clips"] == 3 and evaluation["seeds"] == [0, 1]
    run = MlflowClient(uri).get_run(result.run_id).data
    assert run.params["carve.carve_seed"] == "3" and run.params["carve.val_clips"] == "3"
    assert run.metrics["lr_convnet"] == evaluation["lr"]


def test_feature_kind_reaches_the_set_and_a_set_is_refused_in_another_kind(digits: Path, uri: str,
                                                                         tmp_path: Path) -> None:
    from ddfad_apps.distill import SyntheticSet

    out = tmp_path / "mfcc"
    result = run_distill_job(DistillJob(dataset=str(digits), method="random", cpc=1, feature="mfcc", eval_seeds=0,
                                        audio=False, out=out, device="cpu", tracking_uri=uri),
                             progress=False, say=lambda line: None)
    # 0.5 s at 8 kHz, 20 ms hop: 26 frames; plain MFCC has one channel (FD-MFCC three)
    assert tuple(result.synthetic.features.shape) == (3, 1, 20, 26)
    assert SyntheticSet.load(out).meta["features"]["kind"] == "mfcc"
    assert json.loads((out / "run.json").read_text())["features"]["kind"] == "mfcc"

    ok = run_evaluate_job(EvaluateJob(out, seeds=1, epochs=1, width=8, lr_grid=(0.01,), device="cpu",
                                      tracking_uri=uri), progress=False, say=lambda line: None)
    assert MlflowClient(uri).get_run(ok.run_id).data.params["features.kind"] == "mfcc"
    with pytest.raises(JobError, match="feature settings differ.*kind 'mfcc' vs 'lpcc'"):
        run_evaluate_job(EvaluateJob(out, feature="lpcc", seeds=1, epochs=1, device="cpu", tracking_uri=uri),
                         progress=False, say=lambda line: None)
    # MFCC sets are reconstructed; LPCC has no spectrum to invert: refused, up front
    assert run_reconstruct_job(ReconstructJob(out, n_iter=2, device="cpu")).num_clips == 3
    with pytest.raises(JobSettingsError, match="--feature lpcc cannot be turned back into audio"):
        run_distill_job(DistillJob(dataset=str(digits), method="random", feature="lpcc", out=tmp_path / "l"))
    lpcc = tmp_path / "lpcc"
    run_distill_job(DistillJob(dataset=str(digits), method="random", cpc=1, feature="lpcc", eval_seeds=0, audio=False,
                               out=lpcc, device="cpu", tracking_uri=uri), progress=False, say=lambda line: None)
    with pytest.raises(JobError, match="lpcc features, which cannot be turned into audio"):
        run_reconstruct_job(ReconstructJob(lpcc, device="cpu"))


def test_reconstruct_and_evaluate_jobs_on_a_run_folder(digits: Path, uri: str, tmp_path: Path) -> None:
    out = tmp_path / "random"
    run_distill_job(DistillJob(dataset=str(digits), method="random", cpc=2, eval_seeds=0, audio=False, out=out,
                               device="cpu", tracking_uri=uri), progress=False, say=lambda line: None)
    assert not (out / "audio").exists()

    rebuilt = run_reconstruct_job(ReconstructJob(out, n_iter=4, device="cpu"))
    manifest = json.loads((out / "audio" / "manifest.json").read_text())
    assert rebuilt.num_clips == manifest["num_clips"] == 6 and manifest["method"] == "random"
    assert rebuilt.export.figure.exists() and rebuilt.run_id is None  # no active MLflow run to log into

    lines: list[str] = []
    job = EvaluateJob(out, models=("convnet", "resnet18"), seeds=1, epochs=2, width=8, roundtrip=True,
                      device="cpu", tracking_uri=uri, experiment="jobs-evaluate")
    result = run_evaluate_job(job, progress=False, say=lines.append)
    assert list(result.report) == ["features", "audio roundtrip"]
    assert all(list(res) == ["convnet", "resnet18"] for res in result.report.values())
    metrics = MlflowClient(uri).get_run(result.run_id).data.metrics
    for model in ("convnet", "resnet18"):
        assert metrics[f"test_accuracy_{model}"] == pytest.approx(result.report["features"][model]["mean"])
        assert metrics[f"test_accuracy_{model}_roundtrip"] == pytest.approx(
            result.report["audio roundtrip"][model]["mean"])
    assert len(result.table.splitlines()) == 5 and "tested on data set 'digits'" in lines[0]


def test_evaluate_job_waveform_noise_and_round_trip_through_the_protocol(digits: Path, uri: str,
                                                                         tmp_path: Path) -> None:
    out = tmp_path / "herding"
    run_distill_job(DistillJob(dataset=str(digits), method="herding", cpc=2, eval_seeds=0, out=out, device="cpu",
                               tracking_uri=uri), progress=False, say=lambda line: None)
    job = EvaluateJob(out, seeds=2, epochs=1, width=8, lr_grid=(0.01, 0.03), waveform_noise=(0.0, 0.01, 0.1),
                      n_iter=2, roundtrip=True, device="cpu", tracking_uri=uri, experiment="jobs-noise")
    result = run_evaluate_job(job, progress=False, say=lambda line: None)
    saved = json.loads(Path(MlflowClient(uri).download_artifacts(result.run_id, "evaluation.json",
                                                                 str(tmp_path))).read_text())
    assert list(saved) == ["features", "audio roundtrip", "waveform noise 0", "waveform noise 0.01",
                           "waveform noise 0.1"]
    noise = [saved[f"waveform noise {s:g}"]["convnet"]["noise"] for s in (0.0, 0.01, 0.1)]
    assert [n["variance"] for n in noise] == pytest.approx([0.0, 1e-4, 1e-2])
    assert noise[0]["snr_db"] is None and noise[1]["snr_db"] == pytest.approx(noise[2]["snr_db"] + 20.0)
    # every level, the round trip and the features: the same protocol (lr grid on the carved part), same seeds
    for kind, res in saved.items():
        ev = res["convnet"]
        assert ev["protocol"]["name"] == "lr-grid-on-carved-validation", kind
        assert sorted(ev["val_scores"]) == ["0.01", "0.03"] and ev["seeds"] == [0, 1], kind
        assert ev["carve"] == json.loads((out / "run.json").read_text())["carve"], kind
    rt, feats = saved["audio roundtrip"]["convnet"], saved["features"]["convnet"]
    diff = [a - b for a, b in zip(rt["accuracies"], feats["accuracies"])]
    assert rt["audio_minus_features"]["mean"] == pytest.approx(sum(diff) / 2)
    assert "waveform noise 0.1" in result.table and "SNR" in result.table
    metrics = MlflowClient(uri).get_run(result.run_id).data.metrics
    assert metrics["test_accuracy_convnet_wnoise_0.1"] == pytest.approx(saved["waveform noise 0.1"]["convnet"]["mean"])
    with pytest.raises(JobSettingsError, match="--waveform-noise evaluates with the lr-grid protocol only"):
        run_evaluate_job(EvaluateJob(out, waveform_noise=(0.1,), eval_protocol="fixed-lr"), progress=False)


def test_settings_that_cannot_be_honoured_are_refused_before_any_work(digits: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # must never be created: no run opens for refused settings
    cases = [
        (lambda: run_distill_job(DistillJob(method="random", iterations=5, out=tmp_path / "r", tracking_uri=uri)),
         "--iterations does not apply to --method random"),
        (lambda: run_distill_job(DistillJob(method="dm", backprop_steps=4, out=tmp_path / "b", tracking_uri=uri)),
         "--backprop-steps applies to --method mtt only"),
        (lambda: run_distill_job(DistillJob(dataset=str(digits), method="mtt", cpc=1, backprop_steps=99,
                                            out=tmp_path / "w", tracking_uri=uri)),
         "--backprop-steps 99 exceeds the fast preset's 20 student steps"),
        (lambda: run_distill_job(DistillJob(method="mtt", iterations=0, out=tmp_path / "z", tracking_uri=uri)),
         "--iterations must be at least 1, got 0"),
        (lambda: run_distill_job(DistillJob(method="mtt", backprop_steps=0, out=tmp_path / "z", tracking_uri=uri)),
         "--backprop-steps must be at least 1, got 0"),
        (lambda: run_distill_job(DistillJob(method="dm", init="dm", out=tmp_path / "i", tracking_uri=uri)),
         "--init applies to --method mtt only, not dm"),
        (lambda: run_distill_job(DistillJob(method="mtt", init="kmeans", out=tmp_path / "k", tracking_uri=uri)),
         "unknown --init 'kmeans'; choose from random, herding, dm"),
        (lambda: run_distill_job(DistillJob(method="random", eval_seeds=0, eval_epochs=5, out=tmp_path / "e",
                                            tracking_uri=uri)), "--eval-epochs has no effect"),
        (lambda: run_distill_job(DistillJob(dataset=str(digits), data_root=tmp_path, method="random", cpc=1,
                                            out=tmp_path / "d", tracking_uri=uri)),
         "--data-root applies to the registered data sets"),
        (lambda: run_distill_job(DistillJob(dataset=str(digits), split_mode="actor", out=tmp_path / "s",
                                            tracking_uri=uri)), "--split-mode applies to --dataset ravdess only"),
        (lambda: run_train_job(TrainJob(dataset="fsdd", model="vgg11", depth=4, tracking_uri=uri)),
         "--depth applies to --model convnet only"),
        (lambda: run_train_job(TrainJob(dataset="fsdd", group_pattern="_(.+)_", tracking_uri=uri)),
         "--group-pattern applies to folder data sets"),
        (lambda: run_distill_job(DistillJob(dataset=str(digits), group_pattern="(", out=tmp_path / "g",
                                            tracking_uri=uri)), "is not a regular expression"),
        (lambda: run_train_job(TrainJob(dataset=str(digits), n_mfcc=500, tracking_uri=uri)),
         "500 cepstral coefficients requested"),
        (lambda: run_evaluate_job(EvaluateJob(tmp_path, models=("convnet", "alexnet"))), r"unknown model\(s\)"),
        (lambda: run_distill_job(DistillJob(method="random", eval_protocol="fixed-lr", extend_edges=1,
                                            out=tmp_path / "x", tracking_uri=uri)),
         "--extend-edges applies to --protocol lr-grid only"),
        (lambda: run_cicl_job(CICLJob(dataset=str(digits), distill_method="herding", distill_steps="scale_free",
                                      out=tmp_path / "c", tracking_uri=uri), progress=False),
         "--distill-steps: step rule 'scale_free' is not known for method 'herding'"),
        (lambda: run_cicl_job(CICLJob(dataset=str(digits), distill_set="lr_img:0.1,lr_imgs:1",
                                      out=tmp_path / "c", tracking_uri=uri), progress=False),
         "--distill-set: lr_imgs not a setting of 'dm'"),
        (lambda: run_cicl_job(CICLJob(dataset=str(digits), distill_set="iterations:600", distill_iterations=60,
                                      out=tmp_path / "c", tracking_uri=uri), progress=False),
         r"--distill-set: iterations \(also --distill-iterations\) given twice"),
    ]
    for call, message in cases:
        with pytest.raises(JobSettingsError, match=message):
            call()
    # a data fault is a JobError, not a settings error (the CLI exits 1, not 2)
    with pytest.raises(JobError, match="unknown data set 'no-such-set'") as info:
        run_train_job(TrainJob(dataset="no-such-set", tracking_uri=uri))
    assert not isinstance(info.value, JobSettingsError)
    assert not any((tmp_path / name).exists() for name in ("r", "e", "d", "s", "x", "c", "mlflow.db"))


def test_cicl_job_summarises_what_it_saved_and_resumes(fsdd_folder, uri: str, tmp_path: Path) -> None:
    from ddfad_apps.continual.runner import make_memory
    from ddfad_apps.jobs import CICLJob, run_cicl_job

    folder = fsdd_folder(("0", "1", "2", "3"), 6)
    job = CICLJob(dataset=str(folder), memories=("random",), mem_per_class=2, seeds=1, epochs=1, finetune_epochs=1,
                  device="cpu", tracking_uri=uri, experiment="jobs-cicl", out=tmp_path / "cicl")
    result = run_cicl_job(job, progress=False, say=lambda line: None)
    (run,) = result.runs["random"]
    saved = json.loads((result.out_dir / "random" / "seed0.json").read_text())
    assert saved["final_accuracy"] == pytest.approx(run["final_accuracy"]) and len(run["accuracy_curve"]) == 2
    assert result.summary["random"]["final_accuracy_mean"] == pytest.approx(100 * run["final_accuracy"])
    logged = MlflowClient(uri).get_run(result.run_id).data.metrics["random.final_accuracy_mean"]
    assert logged == pytest.approx(100 * run["final_accuracy"])
    lines: list[str] = []
    again = run_cicl_job(job, progress=False, say=lines.append)  # resumes: nothing trained again
    assert any("skipped, done before" in line for line in lines) and again.runs["random"][0] == saved
    # --distill-set reaches the memory's settings (one DistilledMemory per cell), beside --distill-iterations
    cfg = replace(job, distill_method="mtt", distill_set="syn_steps:20,lr_img:0.5", distill_iterations=7).config()
    assert cfg.distill_overrides == {"syn_steps": 20, "lr_img": 0.5, "iterations": 7}
    assert make_memory("distilled", cfg, 4, 0, "cpu").settings_for(2).mtt.syn_steps == 20
    later = run_cicl_job(replace(job, first_seed=1), progress=False, say=lines.append)  # a later block: seed 1 only
    assert [r["seed"] for r in later.runs["random"]] == [1] and (result.out_dir / "random" / "seed1.json").exists()
    with pytest.raises(JobSettingsError, match="--first-seed >= 0"):
        replace(job, first_seed=-1).seed_range()
    with pytest.raises(JobError, match="unknown memory bogus"):
        run_cicl_job(CICLJob(dataset=str(folder), memories=("bogus",)), progress=False)


def test_nas_job_writes_the_report_it_returns(digits: Path, tmp_path: Path) -> None:
    from ddfad_apps.jobs import NASSearchJob, run_nas_job

    out = tmp_path / "nas"
    job = NASSearchJob(proxies=("early-stopping",), dataset=str(digits), sample=2, truth_epochs=1, workers=1,
                       restriction={"depth": ["1", "2"], "width": ["32"], "activation": ["relu"], "norm": ["none"],
                                    "pooling": ["none", "max"]},
                       tracking_uri=f"sqlite:///{out / 'mlflow.db'}", out=out)
    result = run_nas_job(job, progress=False, say=lambda line: None)
    saved = json.loads((out / "report.json").read_text())
    assert saved["reports"] == json.loads(json.dumps(result.report["reports"], default=str))
    assert len(saved["sample"]) == 2 and set(saved["trials"]["early-stopping"]) == set(saved["sample"])
    assert (out / "report.txt").read_text().strip() == result.text.strip()
    with pytest.raises(JobSettingsError, match="needs --n-trials"):
        run_nas_job(NASSearchJob(sampler="tpe", out=tmp_path / "bad"), progress=False)


def test_distill_options_replace_the_presets_settings_and_only_those() -> None:
    """--iterations, --backprop-steps and --init (MTT's start) reach the method's settings; the rest stay the preset's."""
    from ddfad_apps.distill.presets import method_settings

    job = DistillJob(method="mtt", cpc=5, iterations=7, init="dm")
    assert job.overrides() == {"iterations": 7, "init": "dm"}
    got = method_settings("mtt", "fast", 5, 1000, **job.overrides()).mtt
    preset = method_settings("mtt", "fast", 5, 1000).mtt
    assert (got.iterations, got.init, preset.init) == (7, "dm", "herding")
    assert got.syn_steps == preset.syn_steps and got.backprop_steps == preset.backprop_steps
    assert DistillJob(method="dm").overrides() == {}
