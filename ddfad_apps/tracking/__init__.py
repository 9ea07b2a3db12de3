"""Experiment tracking: one thin layer over MLflow shared by every command (train, distill, cicl, nas).

``tracking_run(...)`` opens a run and yields a :class:`RunLogger`; ``load_model`` loads a model it logged (safetensors
+ JSON, never pickle); ``figures`` builds the standard plots.
MLflow itself is imported only when a run starts, so importing this package stays cheap.
"""

from ddfad_apps.tracking.figures import confusion_matrix_figure, training_curves_figure
from ddfad_apps.tracking.mlflow_run import (
    RunLogger, flatten_params, load_model, prepare_store, resolve_tracking_uri, tracking_run,
)

__all__ = [
    "RunLogger", "confusion_matrix_figure", "flatten_params", "load_model", "prepare_store", "resolve_tracking_uri",
    "tracking_run", "training_curves_figure",
]
