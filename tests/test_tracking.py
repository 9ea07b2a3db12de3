"""The MLflow layer: params flattening, what a run logs, FAILED on error, URI scoping, concurrent starts on a new
store, models logged and loaded without pickle, and the figures.

Every test talks to a SQLite store in a temporary folder (MLflow 3 refuses the plain file store), shared by
the module because creating a store's tables costs seconds.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from ddfad_apps.models import build_model  # noqa: E402
from ddfad_apps.models.serialize import SPEC_FILE, WEIGHTS_FILE  # noqa: E402
from ddfad_apps.tracking import (  # noqa: E402
    confusion_matrix_figure, flatten_params, load_model, resolve_tracking_uri, tracking_run, training_curves_figure,
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
        model_uri = run.model(model, "model", architecture="convnet", model_kwargs={"width": 4, "depth": 2})
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
    assert model_uri == f"models:/{models[0].model_id}"
    # Safetensors weights + JSON settings, nothing else: no pickle, no MLmodel (whose pytorch flavour unpickles).
    assert {a.path for a in client.list_logged_model_artifacts(models[0].model_id)} == {SPEC_FILE, WEIGHTS_FILE}
    written = [p.relative_to(folder) for p in (folder / "mlartifacts").rglob("*") if p.is_file()]
    assert written and not [p for p in written if p.suffix in {".pkl", ".pt", ".pth", ".pickle"} or p.name == "MLmodel"]
    settings = json.loads((Path(models[0].artifact_location.removeprefix("file://")) / SPEC_FILE).read_text())
    assert settings["name"] == "convnet" and settings["kwargs"] == {"width": 4, "depth": 2}
    assert settings["input_shape"] == [3, 8, 12] and settings["num_classes"] == 3

    x = torch.randn(5, 3, 8, 12)
    expected = model.eval()(x)
    for source in (run_id, model_uri):  # by run id (its model called "model") and by the returned URI
        loaded = load_model(source, tracking_uri=uri)
        assert type(loaded) is type(model) and not loaded.training
        assert torch.equal(loaded(x), expected)
    assert not (tmp_path / "mlflow.db").exists()  # loading used the given store, not MLflow's default in the cwd


def test_load_model_from_folder_rejects_bad_settings(store: tuple[str, Path], tmp_path: Path) -> None:
    """The loader is the gate for files from a shared store: it builds registry models only, checks the weights."""
    uri, _ = store
    model = build_model("vgg11", 2, (3, 8, 12), width=4, norm="batchnorm")
    with tracking_run("t-load", None, {}, tracking_uri=uri) as run:
        run.model(model, "net", architecture="vgg11", model_kwargs={"width": 4, "norm": "batchnorm"})
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=_logged_models(
        MlflowClient(uri), run.run_id, run.experiment_id)[0].artifact_location, dst_path=str(tmp_path / "m")))
    x = torch.randn(3, 3, 8, 12)
    assert torch.equal(load_model(folder)(x), model.eval()(x))
    with pytest.raises(LookupError, match="no logged model named 'model'"):
        load_model(run.run_id, tracking_uri=uri)  # it was logged as "net"

    spec = json.loads((folder / SPEC_FILE).read_text())
    for change, message in (({"name": "os.system"}, "unknown model 'os.system'"),
                            ({"kwargs": {"width": 8, "norm": "batchnorm"}}, "weights do not fit the settings")):
        (folder / SPEC_FILE).write_text(json.dumps({**spec, **change}))
        with pytest.raises(ValueError, match=message):
            load_model(folder)
    (folder / SPEC_FILE).write_text(json.dumps(spec))
    (folder / WEIGHTS_FILE).write_bytes((folder / WEIGHTS_FILE).read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="does not match the checksum"):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(run.run_id, tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


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


def test_model_outside_the_registry_is_refused(store: tuple[str, Path]) -> None:
    """A module the registry cannot rebuild is refused (it used to be pickled), before a logged model is created."""
    uri, _ = store
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    convnet = build_model("convnet", 3, (3, 8, 12), width=4, depth=2)
    with tracking_run("t-refuse", None, {}, tracking_uri=uri) as run:
        with pytest.raises(ValueError, match="only models built by ddfad_apps.models.build_model"):
            run.model(net, "plain", architecture="convnet")
        with pytest.raises(ValueError, match="weights do not fit the settings"):  # depth 3 is the default
            run.model(convnet, "wrong", architecture="convnet", model_kwargs={"width": 4})
    assert _logged_models(MlflowClient(uri), run.run_id, run.experiment_id) == []


def _race_worker(worker: int, uri: str, barrier, results) -> None:
    """One 'command' of the race test: wait for the others, then open a run on the (new) store and log a param."""
    torch.set_num_threads(1)
    try:
        barrier.wait(timeout=300)
        with tracking_run("race", f"worker-{worker}", {"worker": worker}, tracking_uri=uri) as run:
            pass
        results.put((worker, run.run_id, None))
    except BaseException as exc:  # reported to the test, which shows every failure
        results.put((worker, None, f"{type(exc).__name__}: {exc}"[:500]))


@pytest.mark.slow  # three fresh processes, each importing MLflow; one builds a store (~20-60 s on 2 busy cores)
def test_concurrent_starts_on_a_new_store(tmp_path: Path) -> None:
    """Commands started together on a new store: without the store lock both run MLflow's schema migrations and one
    dies with 'duplicate column name'; with it one builds the store while the others wait."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ctx = mp.get_context("spawn")
    workers = 3
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(i, uri, barrier, results)) for i in range(workers)]
    for proc in procs:
        proc.start()
    try:
        got = sorted(results.get(timeout=540) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=60)
    assert [error for *_, error in got if error] == []
    assert (tmp_path / "mlflow.db.lock").exists()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(run_id for _, run_id, _ in got)
    assert sorted(r.data.params["worker"] for r in runs) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" for r in runs)


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
