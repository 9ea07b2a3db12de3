"""``ddfad-apps distill / evaluate / reconstruct`` end to end on real FSDD, with a throwaway MLflow store.

DM with 2 iterations keeps the quick tests to seconds; the ``slow`` test runs the DM fast preset for real and
checks the distilled set trains a network far above chance, in features and through audio.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ddfad_apps.cli.main import cli
from ddfad_apps.distill import SyntheticSet

pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path, fsdd_root):
    """Real FSDD (the test fails without it), a throwaway MLflow store, and tmp_path as working directory so a
    default ``--out`` never lands in the repository."""
    monkeypatch.setenv("DDFAD_DATA", str(fsdd_root.parent))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


def run(*args: str) -> "object":
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def mlflow_runs(tmp_path: Path, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def test_distill_writes_a_complete_run_folder_and_logs_it(tmp_path):
    out = tmp_path / "dm"
    res = run("distill", "--dataset", "fsdd", "--method", "dm", "--cpc", "2", "--iterations", "2",
              "--out", str(out), "--eval-epochs", "20", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "test accuracy (convnet, 1 seed(s))" in res.output
    for name in ("run.json", "distilled.json", "distilled.safetensors", "evaluation.json", "losses.png",
                 "original_vs_distilled.png", "audio/manifest.json"):
        assert (out / name).exists(), name
    syn = SyntheticSet.load(out)
    assert len(syn) == 20 and syn.stats is not None
    assert len(list((out / "audio").rglob("*.wav"))) == 20
    evaluation = json.loads((out / "evaluation.json").read_text())["convnet"]
    acc = evaluation["mean"]
    # a real test accuracy: a whole number of FSDD's 300 test clips, the mean of the seeds, and what was printed
    assert len(evaluation["accuracies"]) == 1 and evaluation["accuracies"][0] == pytest.approx(acc)
    assert acc * 300 == pytest.approx(round(acc * 300), abs=1e-4)  # float32 arithmetic
    assert f"test accuracy (convnet, 1 seed(s)): {100 * acc:.2f} +- 0.00 %" in res.output

    client, runs = mlflow_runs(tmp_path, "ddfad-distill")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["method"] == "dm" and runs[0].data.params["cpc"] == "2"
    assert runs[0].data.metrics["test_accuracy_convnet"] == pytest.approx(acc)
    assert len(client.get_metric_history(runs[0].info.run_id, "loss")) == 2
    arts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"audio", "distilled", "losses.png", "original_vs_distilled.png"} <= arts

    # Same request again: complete, nothing distilled again; another request in the same folder: refused.
    again = run("distill", "--dataset", "fsdd", "--method", "dm", "--cpc", "2", "--iterations", "2",
                "--out", str(out), "--no-progress", "--eval-seeds", "0", "--no-audio")
    assert again.exit_code == 0 and "already distilled" in again.output
    assert torch.equal(SyntheticSet.load(out).features, syn.features)
    other = run("distill", "--dataset", "fsdd", "--method", "dm", "--cpc", "3", "--iterations", "2",
                "--out", str(out), "--no-progress")
    assert other.exit_code != 0 and "different run" in other.output and "cpc" in other.output
    assert torch.equal(SyntheticSet.load(out).features, syn.features)


def test_evaluate_cross_architecture_and_audio_roundtrip(tmp_path):
    out = tmp_path / "random"
    assert run("distill", "--method", "random", "--cpc", "3", "--out", str(out), "--eval-seeds", "0",
               "--no-progress").exit_code == 0
    res = run("evaluate", str(out), "--model", "convnet,resnet18", "--seeds", "1", "--epochs", "5",
              "--width", "8", "--roundtrip", "--no-progress")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith(("features", "audio roundtrip")) and "+-" in ln]
    assert len(lines) == 4  # 2 sets x 2 models
    _, runs = mlflow_runs(tmp_path, "ddfad-evaluate")
    metrics = runs[0].data.metrics
    assert {"test_accuracy_convnet", "test_accuracy_resnet18", "test_accuracy_convnet_roundtrip"} <= set(metrics)


def test_bad_requests_get_clear_errors(tmp_path):
    res = run("distill", "--method", "random", "--cpc", "1000", "--out", str(tmp_path / "x"), "--no-progress")
    assert res.exit_code != 0 and "only 243 training clips" in res.output and "after carving 270 validation clips" in res.output
    assert not (tmp_path / "x").exists()  # nothing left that looks like a run
    res = run("evaluate", str(tmp_path), "--no-progress")
    assert res.exit_code != 0 and "not a ddfad-apps distillation folder" in res.output
    res = run("distill", "--dataset", "fsdd", "--split-mode", "actor", "--no-progress")
    assert res.exit_code != 0 and "ravdess only" in res.output


def test_reconstruct_rewrites_audio_of_a_run(tmp_path):
    out = tmp_path / "herding"
    assert run("distill", "--method", "herding", "--cpc", "1", "--out", str(out), "--eval-seeds", "0",
               "--no-audio", "--no-progress").exit_code == 0
    assert not (out / "audio").exists()
    res = run("reconstruct", str(out), "--n-iter", "4")
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "audio" / "manifest.json").read_text())
    assert manifest["num_clips"] == 10 and manifest["method"] == "herding"


@pytest.mark.slow
def test_dm_fast_preset_distils_a_set_that_trains_a_network(tmp_path):
    out = tmp_path / "dm-fast"
    # the whole pipeline under the protocol (carve, lr chosen on validation from a two-rate grid), with shorter
    # evaluation training than the preset's 300 epochs to keep CI within minutes
    res = run("distill", "--method", "dm", "--cpc", "10", "--out", str(out), "--no-progress",
              "--eval-epochs", "100", "--lr-grid", "0.01,0.03")
    assert res.exit_code == 0, res.output
    evaluation = json.loads((out / "evaluation.json").read_text())
    acc = evaluation["convnet"]["mean"]
    assert acc > 0.7  # 100 clips of 10 spoken digits (chance 0.1); README: ~0.9


def test_folder_set_is_found_by_path_and_refused_on_data_it_does_not_describe(tmp_path, monkeypatch, fsdd_folder,
                                                                              fsdd_root):
    digits = fsdd_folder(("0", "1", "2"), 6)  # tmp_path/digits, 0.5 s clips
    out = tmp_path / "set"
    res = run("distill", "--dataset", "digits", "--method", "random", "--cpc", "2", "--out", str(out),
              "--eval-seeds", "0", "--no-audio", "--no-progress")
    assert res.exit_code == 0, res.output
    recorded = json.loads((out / "run.json").read_text())["dataset"]
    assert recorded["name"] == "digits" and recorded["folder"] == str(digits.resolve()) and recorded["fingerprint"]

    # Evaluated from another directory holding another 'digits' (5 other classes): the recorded folder is used.
    decoy = tmp_path / "elsewhere" / "digits"
    for digit in "34567":
        (decoy / digit).mkdir(parents=True)
        for take in range(3):
            shutil.copy(fsdd_root / "recordings" / f"{digit}_jackson_{take}.wav", decoy / digit)
    monkeypatch.chdir(decoy.parent)
    args = ("--seeds", "1", "--epochs", "2", "--width", "8", "--no-progress")
    res = run("evaluate", str(out), *args)
    assert res.exit_code == 0, res.output
    assert f"tested on data set 'digits' ({digits.resolve()})" in res.output and "3 classes" in res.output

    # The 3-class set against the real 10-class FSDD: refused, naming what differs (it used to score 8.67%).
    res = run("evaluate", str(out), "--dataset", "fsdd", *args)
    assert res.exit_code == 1 and "+-" not in res.output, res.output
    assert f"the distilled set in {out} does not fit data set 'fsdd'" in res.output
    assert "classes differ (set has 3" in res.output and "data has 10" in res.output
    assert "input shape differs (set (3, 20, 26), data (3, 20, 51))" in res.output
    assert "normalisation statistics differ" in res.output
    run_file = out / "run.json"
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "dataset": "fsdd"}))  # the old bug
    res = run("reconstruct", str(out), "--n-iter", "2")
    assert res.exit_code == 1 and "classes differ" in res.output
    assert "clip length (s) differs (set 0.5, data 1.0)" in res.output
    assert not (out / "audio").exists()
    res = run("evaluate", str(out), "--dataset", str(digits), "--data-root", str(tmp_path), *args)
    assert res.exit_code == 2 and "--data-root applies to the registered data sets" in res.output

    # The folder changed since distillation: refused rather than evaluated on other clips.
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "dataset": recorded}))
    shutil.copy(fsdd_root / "recordings" / "0_jackson_40.wav", digits / "0")
    res = run("evaluate", str(out), *args)
    assert res.exit_code == 1 and f"folder data set {digits.resolve()} changed since" in res.output

    # A damaged set file: one clear error naming it, no traceback.
    tensors = out / "distilled.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])
    res = run("evaluate", str(out), "--dataset", str(digits), *args)
    assert res.exit_code == 1 and f"{tensors} is not a readable safetensors file" in res.output


def test_options_that_cannot_be_honoured_are_refused(tmp_path, fsdd_folder):
    res = run("distill", "--method", "random", "--iterations", "5", "--out", str(tmp_path / "r"), "--eval-seeds",
              "0", "--no-audio", "--no-progress")
    assert res.exit_code == 2 and "--iterations does not apply to --method random" in res.output
    res = run("distill", "--method", "random", "--eval-seeds", "0", "--eval-epochs", "5", "--out",
              str(tmp_path / "e"), "--no-audio", "--no-progress")
    assert res.exit_code == 2 and "--eval-epochs has no effect with --eval-seeds 0" in res.output
    digits = fsdd_folder(("0", "1"), 4)
    res = run("distill", "--dataset", str(digits), "--data-root", str(tmp_path), "--method", "random", "--cpc", "1",
              "--out", str(tmp_path / "d"), "--eval-seeds", "0", "--no-audio", "--no-progress")
    assert res.exit_code == 2 and "--data-root applies to the registered data sets" in res.output
    assert not any((tmp_path / name).exists() for name in ("r", "e", "d"))
