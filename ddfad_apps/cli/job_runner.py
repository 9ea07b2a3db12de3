"""How every command runs its job: progress-friendly printing, and a job's user errors as clean CLI errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ddfad_apps.jobs.errors import JobError, JobSettingsError

T = TypeVar("T")


def echo_for(progress: bool) -> Callable[[str], None]:
    """``tqdm.write`` while progress bars are shown (keeps the bar below the lines), else ``click.echo``."""
    if progress:
        from tqdm.auto import tqdm

        return tqdm.write
    return click.echo


def run_job(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; a :class:`JobSettingsError` becomes a :class:`click.UsageError` (exit code 2) and
    any other :class:`JobError` a :class:`click.ClickException` (exit code 1), each with its message."""
    try:
        return fn(*args, **kwargs)
    except JobSettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    except JobError as exc:
        raise click.ClickException(str(exc)) from exc
