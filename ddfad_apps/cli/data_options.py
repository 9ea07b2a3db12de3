"""The data-set options every data-consuming command shares, and turning data errors into clear CLI messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ddfad_apps.data.registry import DATASETS


def data_options(f: Callable) -> Callable:
    """``--dataset``, ``--data-root`` and ``--split-mode``, in that order on ``--help``."""
    f = click.option("--split-mode", type=click.Choice(["actor", "stratified"]), default=None,
                     help="RAVDESS only: actor-independent (default; actors 21-24 test) or stratified split.")(f)
    f = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Folder holding the data sets (default: $DDFAD_DATA, else the ddfad-apps cache).")(f)
    f = click.option("--dataset", default="fsdd", show_default=True, metavar="NAME|DIR",
                     help=f"Data set name ({', '.join(sorted(DATASETS))}) or a folder with one sub-folder per "
                          "class.")(f)
    return f


def dataset_options(dataset: str, split_mode: str | None) -> dict[str, Any]:
    if split_mode is not None and dataset.lower() != "ravdess":
        raise click.UsageError("--split-mode applies to --dataset ravdess only")
    return {"split_mode": split_mode} if split_mode else {}


def load_splits_or_fail(dataset: str, data_root: Path | str | None, progress: bool = True, **options: Any):
    """:func:`load_features` whose data errors (missing data set, unreadable clip, empty class) become a
    :class:`click.ClickException` carrying their message, which names the problem and the fix."""
    from ddfad_apps.data import AudioReadError
    from ddfad_apps.features import load_features

    try:
        return load_features(dataset, data_root, progress=progress, **options)
    except (OSError, ValueError, AudioReadError) as exc:
        raise click.ClickException(str(exc)) from exc
