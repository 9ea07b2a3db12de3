"""``ddfad-apps train`` end to end on a tiny folder data set made of real FSDD clips, and its clean errors.

The folder data set (3 digits x 6 clips, copied into tmp_path) keeps the run to seconds while going through
the real decode -> FD-MFCC -> train -> MLflow path; the copies never touch the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from ddfad_apps.cli.main import cli  # noqa: E402



@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tiny_folder(fsdd_folder) -> Path:
    return fsdd_folder(("0", "1", "2"), 6)


def test_train_logs_run(tiny_folder: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["train", "--dataset", str(tiny_folder), "--epochs", "2", "--width", "8", "--depth", "2",
            "--tracking-uri", uri, "--experiment", "cli-test", "--no-progress", "--seed", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "epoch 1/2" in result.output and "test accuracy" in result.output

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cli-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "digits-convnet"
    params = run.data.params
    assert params["model.name"] == "convnet" and params["model.width"] == "8" and params["model.depth"] == "2"
    assert params["train.epochs"] == "2" and params["features.kind"] == "fd_mfcc"
    assert params["data.num_classes"] == "3" and params["seed"] == "1"
    for name in ("train_loss", "train_accuracy", "test_accuracy"):
        assert len(client.get_metric_history(run.info.run_id, name)) == 2
    final = run.data.metrics["final_test_accuracy"]
    # the final accuracy is the last epoch's, and what the command printed as correct / test clips
    assert client.get_metric_history(run.info.run_id, "test_accuracy")[-1].value == pytest.approx(final)
    correct, total = re.search(r"test accuracy [0-9.]+ \((\d+)/(\d+)\)", result.output).groups()
    assert final == pytest.approx(int(correct) / int(total)) and int(total) > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "training_curves.png", "training.json"} <= artifacts
    models = client.search_logged_models(
        experiment_ids=[experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert [m.name for m in models] == ["model"]
    assert not (tmp_path / "mlruns").exists()


def test_missing_dataset_is_a_clean_error(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["train", "--dataset", "fsdd", "--data-root", str(empty), "--tracking-uri", uri,
                                      "--no-progress"])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a click error, not an escaped exception
    assert "Traceback" not in result.output
    assert "Data set 'fsdd' not found" in result.output
    assert "fsdd/recordings" in result.output and str(empty) in result.output  # expected layout and place
    assert not (tmp_path / "mlflow.db").exists()  # no run is opened for data that is not there


def test_option_misuse_is_a_usage_error() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--dataset", "fsdd", "--split-mode", "actor"])
    assert result.exit_code == 2 and "--split-mode applies to --dataset ravdess only" in result.output
    result = runner.invoke(cli, ["train", "--dataset", "fsdd", "--model", "vgg11", "--depth", "4"])
    assert result.exit_code == 2 and "--depth applies to --model convnet only" in result.output
    result = runner.invoke(cli, ["train", "--dataset", "no-such-set"])
    assert result.exit_code == 1 and "unknown data set 'no-such-set'" in result.output


def test_options_that_cannot_be_honoured_are_refused(tiny_folder: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = ["train", "--dataset", str(tiny_folder), "--epochs", "1", "--width", "4", "--depth", "1",
            "--tracking-uri", uri, "--no-progress"]
    result = CliRunner().invoke(cli, [*base, "--n-mfcc", "500"])  # used to train on 40 and log 500
    assert result.exit_code == 2, result.output
    assert "500 cepstral coefficients requested but the DCT of 40 mel bands has only 40" in result.output
    result = CliRunner().invoke(cli, [*base, "--data-root", str(tmp_path)])  # a folder ignores --data-root
    assert result.exit_code == 2 and "--data-root applies to the registered data sets" in result.output
    result = CliRunner().invoke(cli, [*base, "--duration", "0.05"])  # 3 frames, fewer than the delta window
    assert result.exit_code == 1 and "fewer than the 9-frame delta window" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_nan_features_are_named_not_blamed_on_the_learning_rate(tiny_folder: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ddfad_apps import features

    real = features.load_features

    def poisoned(*args, **kwargs):  # as a damaged feature cache or clip would deliver them
        splits = real(*args, **kwargs)
        splits.train.features[1, 0, 0, 0] = float("nan")
        splits.train.features[4, 2, 5, 1] = float("inf")
        return splits

    monkeypatch.setattr(features, "load_features", poisoned)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(cli, ["train", "--dataset", str(tiny_folder), "--epochs", "1", "--width", "4",
                                      "--tracking-uri", uri, "--no-progress"])
    assert result.exit_code == 1, result.output
    assert re.search(r"the training features contain NaN/inf in 2 of \d+ clip\(s\), e\.g\. index 1, 4",
                     result.output), result.output
    assert "lower the lr" not in result.output


def test_the_whole_training_split_goes_through_the_evaluation_protocol(fsdd_folder, tmp_path: Path) -> None:
    # the reference row of every comparison: carved as the sets' sources are, rate chosen on the validation part
    import json

    folder = fsdd_folder(("0", "1", "2"), 10)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["train", "--dataset", str(folder), "--under-protocol", "--seeds", "2", "--epochs", "3",
            "--select-epochs", "2", "--width", "8", "--lr-grid", "0.01,0.03", "--tracking-uri", uri,
            "--experiment", "whole", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("whole").experiment_id])
    ev = json.loads((Path(client.download_artifacts(run.info.run_id, "evaluation.json", str(tmp_path)))).read_text())
    fit, val = ev["carve"]["fit_clips"], ev["carve"]["val_clips"]
    assert val >= 3 and ev["set"] == {"kind": "real", "method": "whole", "clips": fit, "cpc": ev["set"]["cpc"]}
    assert run.data.params["set.clips"] == str(fit) and run.data.params["set.kind"] == "whole"
    # the same selection as any set: the grid's best validation score wins (ties: the lower rate), no learned rate
    scores = {float(lr): s for lr, s in ev["val_scores"].items()}
    assert sorted(scores) == [0.01, 0.03] and ev["lr_source"] == "grid"
    assert ev["lr"] == min(scores, key=lambda lr: (-scores[lr], lr))
    assert ev["protocol"]["select_epochs"] == 2 and ev["protocol"]["epochs"] == 3
    assert ev["protocol"]["model_kwargs"] == {"width": 8} and ev["seeds"] == [0, 1]
    assert run.data.metrics["test_accuracy"] == pytest.approx(sum(ev["accuracies"]) / 2)
    assert f"whole training split ({fit} clips) under the protocol" in result.output

    # settings the protocol owns are refused with it, and its own settings without it
    refused = CliRunner().invoke(cli, [*args, "--lr", "0.1"])
    assert refused.exit_code == 2 and "--lr: the evaluation protocol sets these" in refused.output
    alone = CliRunner().invoke(cli, ["train", "--dataset", str(folder), "--seeds", "3", "--tracking-uri", uri])
    assert alone.exit_code == 2 and "--seeds apply to --under-protocol only" in alone.output
