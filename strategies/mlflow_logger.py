"""An Avalanche logger that sends metrics to MLflow (Avalanche ships TensorBoard and W&B loggers, not MLflow).

Give it an open :class:`~ddfad_apps.tracking.mlflow_run.RunLogger` (what ``tracking_run`` yields, so the run
also carries the command's params and artifacts), or an experiment name and let it open and own a run::

    logger = MLflowLogger(experiment="cl", run_name="replay", tracking_uri="sqlite:///mlflow.db")
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[logger])
    ...
    logger.close()

Scalars (floats, ints, 0-d tensors) become MLflow metrics at step ``x_plot``; matplotlib figures become PNG
artifacts; other values (images, histograms) are skipped.
"""

from __future__ import annotations

import math
import re
from contextlib import ExitStack
from typing import Any

import torch
from avalanche.logging import BaseLogger

from ddfad_apps.tracking.mlflow_run import RunLogger, tracking_run

_BAD_CHARS = re.compile(r"[^\w.\- /:]")


def metric_key(name: str) -> str:
    """An Avalanche metric name as an MLflow key (which allows letters, digits, ``_-. /:``)."""
    return _BAD_CHARS.sub("_", name)


class MLflowLogger(BaseLogger):
    """Log Avalanche metric values to one MLflow run (see the module docstring)."""

    def __init__(self, run: RunLogger | None = None, *, experiment: str = "avalanche", run_name: str | None = None,
                 tracking_uri: str | None = None, params: dict[str, Any] | None = None, prefix: str = "") -> None:
        super().__init__()
        self._stack = ExitStack()
        if run is None:
            run = self._stack.enter_context(tracking_run(experiment, run_name, params or {}, tracking_uri))
        self.run = run
        self.prefix = prefix
        self.logged = 0

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                self.run.metric(metric_key(self.prefix + name), float(value), step=int(x_plot))
                self.logged += 1
            return
        try:
            from matplotlib.figure import Figure
        except ImportError:  # pragma: no cover - matplotlib is a dependency
            return
        if isinstance(value, Figure):
            self.run.figure(value, f"{metric_key(self.prefix + name).replace('/', '_')}_{x_plot}.png")

    def close(self) -> None:
        """End the run this logger opened (a run passed in is left to its owner)."""
        self._stack.close()

    def __enter__(self) -> "MLflowLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)
