"""The jobs layer: one module per job, each a settings dataclass and a function that runs it.

A job does the whole of one user-visible task (load data, check it, run, write a resumable result folder, log to
MLflow, show progress) and returns a result object.  The CLI commands are option parsing over these; scripts and
tests call them directly.  User errors are :class:`JobError` with a message that names the problem and the fix.

========================  ==============================  ====================================
job                       settings                        run
========================  ==============================  ====================================
class-incremental (IV)    :class:`cicl.CICLJob`           :func:`cicl.run_cicl_job`
========================  ==============================  ====================================
"""

from ddfad_apps.jobs.errors import JobError

__all__ = ["JobError"]
