"""The one error a job raises for anything its user can fix (bad settings, missing data, a foreign run folder).

Its message names the problem and the fix; the CLI prints it as is (``click.ClickException``), a Python user
catches it, and anything else escaping a job is a bug with its traceback.
"""

from __future__ import annotations


class JobError(Exception):
    """A job cannot run as asked; the message says why and what to do."""


class JobSettingsError(JobError):
    """The job's settings contradict each other or name something unknown (the CLI's usage error, exit code 2)."""
