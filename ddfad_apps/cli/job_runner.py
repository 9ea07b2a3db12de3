"""How every command runs its job: progress-friendly printing, and a job's user errors as clean CLI errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ddfad_apps.jobs.errors import JobError

T = TypeVar("T")


def echo_for(progress: bool) -> Callable[[str], None]:
    """``tqdm.write`` while progress bars are shown (keeps the bar below the lines), else ``click.echo``."""
    if progress:
        from tqdm.auto import tqdm

        return tqdm.write
    return click.echo


def run_job(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; a :class:`JobError` becomes a :class:`click.ClickException` with its message."""
    try:
        return fn(*args, **kwargs)
    except JobError as exc:
        raise click.ClickException(str(exc)) from exc
