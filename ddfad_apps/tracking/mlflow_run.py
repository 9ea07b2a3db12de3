"""A small layer over MLflow so every command logs runs the same way.

``with tracking_run("train", "fsdd-convnet", params) as run:`` picks the tracking URI (argument, else
``$MLFLOW_TRACKING_URI``, else MLflow's own default, which in MLflow 3 is ``sqlite:///mlflow.db`` in the
current folder), creates the experiment if needed, starts a run, logs the flattened params and yields a
:class:`RunLogger`.  An exception escaping the block marks the run FAILED (KILLED for Ctrl-C) and stores the
error as the run's ``error`` tag, so a crashed command is never shown as a finished run.

Choices made here once, for every command:

* A local SQLite store is created and migrated by one process at a time, under a lock on ``<db>.lock`` beside
  the database (:func:`prepare_store`): MLflow would otherwise run the migrations from every command started on
  a new store at once, and all but one die (``duplicate column name``).
* Models are logged as safetensors weights plus the JSON settings that rebuild them through the models
  registry, never pickled (:meth:`RunLogger.model`, :func:`load_model`): loading a pickle from a shared store
  runs whatever code it names.

* The tracking URI is set only for the duration of the run and restored afterwards (MLflow keeps it as a
  process-wide global and mirrors it into the environment), so tests and notebooks that open runs against
  different stores do not leak into one another.
* A *new* experiment in a local SQLite store gets its artifacts beside the database
  (``<db folder>/mlartifacts/<experiment>``).  MLflow's own default is ``./mlruns`` relative to whatever folder
  the command happens to run in, which scatters artifacts (and litters source trees) while the metadata stays
  in one database.  Experiments that already exist, and remote stores, keep their configured location.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:  # MLflow takes seconds to import; only runs pay for it
    from matplotlib.figure import Figure
    from mlflow.tracking import MlflowClient
    from torch import nn

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
# MLflow's limits (mlflow.utils.validation); copied so flattening works without importing MLflow.
MAX_PARAM_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_TAG_VALUE_LENGTH = 5000
_INVALID_KEY_CHARS = re.compile(r"[^\w.\- /:]")
_TRUNCATED = "...[truncated]"
MODEL_TYPE = "ddfad-safetensors"  # model_type of the logged models written by RunLogger.model


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The URI a run will use: the argument, else ``$MLFLOW_TRACKING_URI``, else MLflow's default."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get(ENV_TRACKING_URI):
        return os.environ[ENV_TRACKING_URI]
    import mlflow

    return mlflow.get_tracking_uri()


def _param_key(key: str) -> str:
    """A key MLflow accepts: odd characters become '_', an over-long key keeps a hash so keys stay distinct."""
    key = _INVALID_KEY_CHARS.sub("_", key)
    if len(key) > MAX_PARAM_KEY_LENGTH:
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        key = f"{key[: MAX_PARAM_KEY_LENGTH - 9]}~{digest}"
    return key


def _param_value(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[: MAX_PARAM_VALUE_LENGTH - len(_TRUNCATED)] + _TRUNCATED
    return text


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": "0.01"}``; dataclass values are flattened like dicts.

    Values are stringified (MLflow stores params as text) and cut to MLflow's length limit, because a
    rejected param would otherwise fail the whole run at its start.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[_param_key(name)] = _param_value(value)
    return flat


def _jsonable(obj: Any) -> Any:
    """Tensors, arrays, paths and dataclasses as plain JSON values (``log_dict`` would reject them)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # torch tensors, numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _local_sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores and in-memory SQLite."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///") :]).split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser().absolute()


def _local_sqlite_folder(uri: str) -> Path | None:
    """Folder of the database file of a ``sqlite:///`` URI, or None for other stores and in-memory SQLite."""
    path = _local_sqlite_path(uri)
    return None if path is None else path.parent


_PREPARED_STORES: set[str] = set()


def prepare_store(uri: str) -> None:
    """Create / migrate a local SQLite store once, under an exclusive lock on ``<database>.lock`` beside it.

    Why: MLflow creates a new store's tables by running its schema migrations from whichever process opens the
    store first, without a lock, so two commands started together on a new ``mlflow.db`` both migrate and one
    dies (``duplicate column name``).  Here the first process to take the lock builds the store (tables,
    migrations, default experiment); the others wait, then find it ready.  MLflow caches the store per URI, so
    later calls in this process reuse it.  Other stores (servers, databases) are left to MLflow.
    """
    db = _local_sqlite_path(uri)
    if db is None or uri in _PREPARED_STORES:
        return
    if not db.parent.is_dir():
        raise FileNotFoundError(f"folder {db.parent} of the MLflow store {uri} does not exist")
    import fcntl

    from mlflow.tracking._tracking_service.utils import _get_store

    with open(db.with_name(db.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        _get_store(uri)  # MLflow's SqlAlchemyStore: creates the tables, migrates, adds the default experiment
    _PREPARED_STORES.add(uri)


def _experiment_id(client: "MlflowClient", name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage != "active":
            raise MlflowException(
                f"MLflow experiment {name!r} is deleted in {uri}; restore it (`mlflow experiments restore`) "
                "or choose another experiment name"
            )
        return experiment.experiment_id
    folder = _local_sqlite_folder(uri)
    location = None
    if folder is not None:
        location = str(folder / "mlartifacts" / re.sub(r"[^\w.\-]", "_", name))
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by a concurrent process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


@contextmanager
def _using_tracking_uri(uri: str) -> Iterator[None]:
    """Make ``uri`` MLflow's current URI (the fluent API -- ``start_run``, ``models:/`` downloads -- reads the
    global) and restore both the global and ``$MLFLOW_TRACKING_URI`` afterwards (``mlflow.set_tracking_uri``
    rewrites the variable)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = getattr(tracking_utils, "_tracking_uri", None)
    previous_env = os.environ.get(ENV_TRACKING_URI)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if previous_env is None:
            os.environ.pop(ENV_TRACKING_URI, None)
        else:
            os.environ[ENV_TRACKING_URI] = previous_env


class RunLogger:
    """Logging calls for one open run; every call goes to that run by id, not to whichever run is active."""

    def __init__(self, client: "MlflowClient", run_id: str, experiment_id: str, tracking_uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri

    def params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) params; for values only known once the run is going, e.g. data set sizes."""
        from mlflow.entities import Param

        flat = [Param(k, v) for k, v in flatten_params(params).items()]
        for start in range(0, len(flat), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=flat[start : start + MAX_PARAMS_PER_BATCH])

    def tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, str(value)[:MAX_TAG_VALUE_LENGTH])

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.client.log_metric(self.run_id, name, float(value), step=step or 0)

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Several metrics of the same step in one store round-trip."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in values.items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def figure(self, fig: "Figure", artifact_file: str) -> None:
        """Log a matplotlib figure (e.g. ``confusion_matrix.png``) and close it if pyplot manages it."""
        self.client.log_figure(self.run_id, fig, artifact_file)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close(fig)

    def artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Log a file, or every file of a folder, under ``artifact_path``."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def model(self, model: "nn.Module", name: str = "model", *, architecture: str,
              model_kwargs: Mapping[str, Any] | None = None) -> str:
        """Log ``model`` (built by ``build_model(architecture, ..., **model_kwargs)``) and return its ``models:/`` URI.

        No pickle anywhere: the weights go as ``model.safetensors`` and the settings that rebuild the model (name,
        kwargs, input shape, class count) as ``model.json`` (:mod:`ddfad_apps.models.serialize`), uploaded as the
        artifacts of an MLflow logged model linked to this run (it is listed under the run's models).  There is
        no MLmodel file, so ``mlflow.pytorch.load_model`` does not apply: load it with
        :func:`ddfad_apps.tracking.load_model`, which only ever builds a registry architecture.
        Raises ValueError for a model the registry cannot rebuild from these settings.
        """
        import tempfile

        from ddfad_apps.models.serialize import ModelSpec, save_model

        spec = ModelSpec.of(model, architecture, model_kwargs)
        with tempfile.TemporaryDirectory(prefix="ddfad-model-") as tmp:
            save_model(model, spec, tmp)  # checks the settings fit the weights before anything is created
            logged = self.client.create_logged_model(
                self.experiment_id, name=name, source_run_id=self.run_id, model_type=MODEL_TYPE,
                params=flatten_params(spec.as_dict()),
            )
            try:
                self.client.log_model_artifacts(logged.model_id, tmp)
            except BaseException:
                self.client.finalize_logged_model(logged.model_id, "FAILED")
                raise
        self.client.finalize_logged_model(logged.model_id, "READY")
        return f"models:/{logged.model_id}"

    def dict(self, d: Mapping[str, Any], artifact_file: str) -> None:
        """Log a mapping as JSON or YAML (by the file's extension); tensors and paths are converted first."""
        self.client.log_dict(self.run_id, _jsonable(d), artifact_file)


def load_model(source: str | os.PathLike, name: str = "model", tracking_uri: str | None = None) -> "nn.Module":
    """Load a model logged by :meth:`RunLogger.model`, on the CPU in eval mode, without unpickling anything.

    ``source`` is a run id (its logged model called ``name``), an artifact URI (``models:/<model id>``, the URI
    :meth:`RunLogger.model` returns, or ``runs:/...``, ``file:...``), or a local folder holding ``model.json``
    and ``model.safetensors``.  The store is ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else MLflow's
    default.  The architecture is rebuilt through :func:`ddfad_apps.models.build_model` from the JSON settings.
    """
    import tempfile

    from ddfad_apps.models.serialize import load_model as load_folder

    if isinstance(source, os.PathLike) or Path(str(source)).is_dir():
        return load_folder(source)
    source = str(source)
    uri = resolve_tracking_uri(tracking_uri)
    db = _local_sqlite_path(uri)
    if db is not None and not db.is_file():
        raise FileNotFoundError(f"MLflow store {db} does not exist (looking for model {source!r} in {uri})")
    prepare_store(uri)
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    artifact_uri = source
    if ":" not in source:  # a run id
        if not re.fullmatch(r"[\w\-]+", source):
            raise ValueError(f"{source!r} is neither a folder, an artifact URI nor an MLflow run id")
        client = MlflowClient(uri)
        run = client.get_run(source)
        found = [m for m in client.search_logged_models([run.info.experiment_id],
                                                        filter_string=f"source_run_id = '{source}'")
                 if m.name == name]
        if len(found) != 1:
            what = "no logged model" if not found else f"{len(found)} logged models ({', '.join(m.model_id for m in found)})"
            raise LookupError(f"run {source} in {uri} has {what} named {name!r}; pass a models:/<model id> URI")
        artifact_uri = found[0].artifact_location
    with tempfile.TemporaryDirectory(prefix="ddfad-model-") as tmp:
        with _using_tracking_uri(uri):  # models:/ URIs are resolved through the global URI, not the argument
            local = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=uri)
        try:
            return load_folder(local)
        except (OSError, ValueError) as exc:  # the temporary path means nothing to the caller: name the source
            raise ValueError(f"model {source!r} (artifacts {artifact_uri}) cannot be loaded: {exc}") from exc


@contextmanager
def tracking_run(
    experiment: str, run_name: str | None, params: Mapping[str, Any], tracking_uri: str | None = None,
    tags: Mapping[str, Any] | None = None, nested: bool = False,
) -> Iterator[RunLogger]:
    """Open an MLflow run in ``experiment`` (created if missing), log ``params``, yield a :class:`RunLogger`.

    The run ends FINISHED, or FAILED (KILLED on KeyboardInterrupt) with an ``error`` tag when an exception
    escapes; the exception is re-raised.  ``nested=True`` opens a child of the currently active run (NAS trials).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    prepare_store(uri)
    with _using_tracking_uri(uri):
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, experiment, uri)
        run_tags = {str(k): str(v)[:MAX_TAG_VALUE_LENGTH] for k, v in (tags or {}).items()}
        active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags, nested=nested)
        status = "FINISHED"
        try:
            logger = RunLogger(client, active.info.run_id, experiment_id, uri)
            logger.params(params)
            yield logger
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            try:
                client.set_tag(active.info.run_id, "error", f"{type(exc).__name__}: {exc}"[:MAX_TAG_VALUE_LENGTH])
            except Exception:  # the store itself may be what failed; the status below matters more
                pass
            raise
        finally:
            mlflow.end_run(status)


__all__ = ["RunLogger", "flatten_params", "load_model", "prepare_store", "resolve_tracking_uri", "tracking_run"]
