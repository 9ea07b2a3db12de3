"""The MLflow layer: params flattening, what a run logs, FAILED on error, URI scoping, and the figures.

Every test talks to a SQLite store in a temporary folder (MLflow 3 refuses the plain file store), shared by
the module because creating a store's tables costs seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from ddfad_apps.tracking import (  # noqa: E402
    confusion_matrix_figure, flatten_params, resolve_tracking_uri, tracking_run, training_curves_figure,
)
from ddfad_apps.tracking.mlflow_run import MAX_PARAM_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlflow.db'}", folder


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user environment leaks in, and anything written relative to the cwd lands in tmp_path."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@dataclass
class _Cfg:
    lr: float = 0.01
    epochs: int = 3


def test_flatten_params_nests_stringifies_and_respects_limits() -> None:
    flat = flatten_params({
        "train": _Cfg(), "model": {"name": "convnet", "kw": {"width": 8}}, "shape": (3, 20, 51), "none": None,
        "empty": {}, "odd key!": 1, "long": "x" * (MAX_PARAM_VALUE_LENGTH + 10), "k" * 300: 1, "k" * 299 + "j": 2,
    })
    assert flat["train.lr"] == "0.01" and flat["train.epochs"] == "3"
    assert flat["model.name"] == "convnet" and flat["model.kw.width"] == "8"
    assert flat["shape"] == "(3, 20, 51)" and flat["none"] == "None" and flat["empty"] == "{}"
    assert flat["odd key_"] == "1"
    assert len(flat["long"]) == MAX_PARAM_VALUE_LENGTH and flat["long"].endswith("[truncated]")
    long_keys = [k for k in flat if k.startswith("kkk")]
    assert len(long_keys) == 2 and all(len(k) <= MAX_PARAM_KEY_LENGTH for k in long_keys)
    assert all(isinstance(v, str) for v in flat.values())


def _all_artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        found |= _all_artifacts(client, run_id, info.path) if info.is_dir else {info.path}
    return found


def _logged_models(client: MlflowClient, run_id: str, experiment_id: str) -> list:
    return client.search_logged_models(experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")


def test_run_logs_params_metrics_artifacts_and_model(store: tuple[str, Path], tmp_path: Path) -> None:
    uri, folder = store
    from ddfad_apps.models import build_model

    torch.manual_seed(0)
    model = build_model("convnet", 3, (3, 8, 12), width=4, depth=2)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    params = {"train": _Cfg(), "model": {"name": "convnet", "width": 4}}
    with tracking_run("t-ok", "ok-run", params, tracking_uri=uri, tags={"command": "test"}) as run:
        for epoch in range(1, 4):
            run.metrics({"train_loss": 1.0 / epoch, "test_accuracy": 0.5 + 0.1 * epoch}, step=epoch)
        run.metric("final_test_accuracy", 0.8)
        run.figure(confusion_matrix_figure([0, 1, 2, 2], [0, 1, 1, 2], ["a", "b", "c"], "cm"), "confusion_matrix.png")
        run.text("some text", "notes/readme.txt")
        run.dict({"classes": ["a", "b"], "stats": torch.ones(2), "path": Path("/x")}, "info.json")
        run.artifact(note, "files")
        model_uri = run.model(model, "model")
        run_id, experiment_id = run.run_id, run.experiment_id

    client = MlflowClient(uri)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "ok-run"
    assert got.data.params["train.lr"] == "0.01" and got.data.params["model.width"] == "4"
    assert got.data.tags["command"] == "test"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2, 3]
    assert len(client.get_metric_history(run_id, "test_accuracy")) == 3
    assert got.data.metrics["final_test_accuracy"] == pytest.approx(0.8)
    assert {"confusion_matrix.png", "notes/readme.txt", "info.json", "files/note.txt"} <= _all_artifacts(client, run_id)
    # Artifacts live beside the database, not in ./mlruns of the current folder.
    assert got.info.artifact_uri.startswith(str(folder)) or str(folder) in got.info.artifact_uri
    assert not (tmp_path / "mlruns").exists()

    models = _logged_models(client, run_id, experiment_id)
    assert [m.name for m in models] == ["model"]
    assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(models[0].model_id)}
    assert model_uri == f"models:/{models[0].model_id}"
    loaded = mlflow.pytorch.load_model(models[0].artifact_location)  # a local path: no tracking URI needed
    x = torch.randn(5, 3, 8, 12)
    torch.testing.assert_close(loaded(x), model.eval()(x))  # batch size other than the example's


def test_failing_body_marks_run_failed_and_reraises(store: tuple[str, Path]) -> None:
    uri, _ = store
    with pytest.raises(RuntimeError, match="boom"):
        with tracking_run("t-fail", "bad", {"a": 1}, tracking_uri=uri) as run:
            run.metric("loss", 1.0, step=1)
            raise RuntimeError("boom")
    got = MlflowClient(uri).get_run(run.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["error"] == "RuntimeError: boom"
    assert mlflow.active_run() is None


def test_model_without_shape_hints_is_pickled(store: tuple[str, Path]) -> None:
    uri, _ = store
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    with tracking_run("t-pickle", None, {}, tracking_uri=uri) as run:
        run.model(net, "plain")
    client = MlflowClient(uri)
    (logged,) = _logged_models(client, run.run_id, run.experiment_id)
    assert isinstance(mlflow.pytorch.load_model(logged.artifact_location), nn.Sequential)


def test_uri_from_environment_and_restored_afterwards(store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    uri, _ = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert resolve_tracking_uri() == uri
    assert resolve_tracking_uri("sqlite:///elsewhere.db") == "sqlite:///elsewhere.db"
    before = mlflow.get_tracking_uri()
    with tracking_run("t-env", "env", {"x": 1}) as run:
        assert run.tracking_uri == uri
    assert MlflowClient(uri).get_run(run.run_id).info.status == "FINISHED"
    assert mlflow.get_tracking_uri() == before
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert mlflow.get_tracking_uri() != uri  # nothing left behind in MLflow's global state


def test_confusion_matrix_figure_counts() -> None:
    fig = confusion_matrix_figure(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), ["x", "y", "z"], "t")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells[(0, 0)] == "1" and cells[(0, 1)] == "1" and cells[(2, 2)] == "2" and cells[(2, 0)] == "1"
    assert "66.67%" in ax.get_title()
    with pytest.raises(ValueError):
        confusion_matrix_figure([0, 1], [0], ["a", "b"])


def test_training_curves_figure_skips_missing_values() -> None:
    history = [{"train_loss": 1.0, "train_accuracy": 0.5}, {"train_loss": 0.5, "train_accuracy": 0.7, "test_accuracy": 0.6}]
    fig = training_curves_figure(history)
    loss_ax, acc_ax = fig.axes[:2]
    assert [line.get_label() for line in loss_ax.lines] == ["train_loss"]
    test_line = next(line for line in acc_ax.lines if line.get_label() == "test_accuracy")
    assert list(test_line.get_xdata()) == [2]
