"""The jobs layer: one module per job, each a settings dataclass and a function that runs it.

A job does the whole of one user-visible task (load data, check it, run, write a resumable result folder, log to
MLflow, show progress) and returns a result object.  The CLI commands are option parsing over these; scripts and
tests call them directly.  User errors are :class:`JobError` with a message that names the problem and the fix;
settings that cannot be honoured together are its subclass :class:`JobSettingsError` (the CLI's usage error).

========================  ===========================================  ==============================================
job                       settings                                     run
========================  ===========================================  ==============================================
whole-data baseline       :class:`train.TrainJob`                      :func:`train.run_train_job`
distillation              :class:`distill.DistillJob`                  :func:`distill.run_distill_job`
evaluation                :class:`evaluate.EvaluateJob`                :func:`evaluate.run_evaluate_job`
reconstruction (audio)    :class:`reconstruct.ReconstructJob`          :func:`reconstruct.run_reconstruct_job`
class-incremental (IV)    :class:`cicl.CICLJob`                        :func:`cicl.run_cicl_job`
architecture search       :class:`nas.NASSearchJob`                    :func:`nas.run_nas_job` (:func:`nas.join_nas_job`)
========================  ===========================================  ==============================================

Every name in that table is importable from here (``from ddfad_apps.jobs import DistillJob, run_distill_job``);
a job's module, with torch and MLflow behind it, is imported only when one of its names is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from ddfad_apps.jobs.errors import JobError, JobSettingsError

# exported name -> the job module defining it (imported on first use)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("TrainJob", "TrainJobResult", "run_train_job"), "train"),
    **dict.fromkeys(("DistillJob", "DistillJobResult", "run_distill_job", "open_run_folder"), "distill"),
    **dict.fromkeys(("EvaluateJob", "EvaluateJobResult", "run_evaluate_job"), "evaluate"),
    **dict.fromkeys(("ReconstructJob", "ReconstructJobResult", "run_reconstruct_job"), "reconstruct"),
    **dict.fromkeys(("CICLJob", "CICLResult", "run_cicl_job"), "cicl"),
    **dict.fromkeys(("NASSearchJob", "NASSearchResult", "run_nas_job", "join_nas_job", "NASAnytimeJob",
                     "NASAnytimeResult", "run_nas_anytime_job"), "nas"),
}

__all__ = ["JobError", "JobSettingsError", *_LAZY]  # noqa: PLE0604 (names are strings, listed once)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
