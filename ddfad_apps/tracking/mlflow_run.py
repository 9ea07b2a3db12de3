"""A small layer over MLflow so every command logs runs the same way.

``with tracking_run("train", "fsdd-convnet", params) as run:`` picks the tracking URI (argument, else
``$MLFLOW_TRACKING_URI``, else MLflow's own default, which in MLflow 3 is ``sqlite:///mlflow.db`` in the
current folder), creates the experiment if needed, starts a run, logs the flattened params and yields a
:class:`RunLogger`.  An exception escaping the block marks the run FAILED (KILLED for Ctrl-C) and stores the
error as the run's ``error`` tag, so a crashed command is never shown as a finished run.

Two choices made here once, for every command:

* The tracking URI is set only for the duration of the run and restored afterwards (MLflow keeps it as a
  process-wide global and mirrors it into the environment), so tests and notebooks that open runs against
  different stores do not leak into one another.
* A *new* experiment in a local SQLite store gets its artifacts beside the database
  (``<db folder>/mlartifacts/<experiment>``).  MLflow's own default is ``./mlruns`` relative to whatever folder
  the command happens to run in, which scatters artifacts (and litters source trees) while the metadata stays
  in one database.  Experiments that already exist, and remote stores, keep their configured location.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:  # MLflow takes seconds to import; only runs pay for it
    import torch
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


def _local_sqlite_folder(uri: str) -> Path | None:
    """Folder of the database file of a ``sqlite:///`` URI, or None for other stores and in-memory SQLite."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///") :]).split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser().absolute().parent


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
    """Make ``uri`` MLflow's current URI (the fluent API, which ``log_model`` needs, reads the global) and restore
    both the global and ``$MLFLOW_TRACKING_URI`` afterwards (``mlflow.set_tracking_uri`` rewrites the variable)."""
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

    def model(self, model: "nn.Module", name: str = "model", input_example: "torch.Tensor | None" = None) -> str:
        """Log ``model`` with ``mlflow.pytorch.log_model`` and return its ``models:/`` URI.

        Checked here with MLflow 3.17 offline: ``mlflow.pytorch.log_model`` works without extra packages, so it
        is used rather than a bare ``state_dict`` artifact (the logged model carries its MLmodel metadata,
        signature and a link to this run, and ``mlflow.pytorch.load_model`` loads it back).  Choices:

        * format ``pt2`` (``torch.export``, MLflow's safe default, loadable without this package's code) when
          an input example is available: the argument, else zeros shaped from the model's
          ``in_channels``/``input_size`` (ddfad models have both).  Two rows, because a one-row example makes
          ``torch.export`` specialise the batch dimension to 1.  If export fails (an architecture with
          data-dependent control flow), or no example exists, the pickle format is used instead, with a warning.
        * ``pip_requirements`` is given explicitly: MLflow's automatic inference re-imports the model in a
          subprocess and costs 15-20 s per call on a 2-core machine.
        * the model is copied to the CPU in eval mode first, so exporting never moves or mutates the caller's
          model, and batch-norm statistics (not batch statistics) are what gets exported.
        """
        import mlflow.pytorch
        import torch

        cpu_model = copy.deepcopy(model).cpu().eval()
        requirements = [f"torch=={torch.__version__.split('+')[0]}"]
        example = input_example
        if example is None and hasattr(cpu_model, "in_channels") and hasattr(cpu_model, "input_size"):
            example = torch.zeros(2, int(cpu_model.in_channels), *map(int, cpu_model.input_size))
        if example is not None:
            example = example.detach().cpu()
            if example.shape[0] == 1:
                example = example.repeat(2, *([1] * (example.dim() - 1)))
            try:
                info = mlflow.pytorch.log_model(
                    cpu_model, name=name, serialization_format="pt2", input_example=example.numpy(),
                    pip_requirements=requirements,
                )
                return info.model_uri
            except Exception as exc:  # torch.export rejects some architectures; pickling accepts any module
                warnings.warn(f"torch.export of model {name!r} failed ({exc}); logging it in pickle format", stacklevel=2)
        info = mlflow.pytorch.log_model(
            cpu_model, name=name, serialization_format="pickle", pip_requirements=requirements,
        )
        return info.model_uri

    def dict(self, d: Mapping[str, Any], artifact_file: str) -> None:
        """Log a mapping as JSON or YAML (by the file's extension); tensors and paths are converted first."""
        self.client.log_dict(self.run_id, _jsonable(d), artifact_file)


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


__all__ = ["RunLogger", "flatten_params", "resolve_tracking_uri", "tracking_run"]
