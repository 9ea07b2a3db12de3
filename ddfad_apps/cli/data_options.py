"""The data-set options every data-consuming command shares, and turning data errors into clear CLI messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ddfad_apps.data.registry import DATASETS, DatasetRef, resolve_dataset


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


def resolve_dataset_or_fail(dataset: str | Path, data_root: Path | str | None = None) -> DatasetRef:
    """:func:`~ddfad_apps.data.registry.resolve_dataset` for the CLI: an unknown name is a ClickException, and a
    ``--data-root`` given with a folder data set is refused (a folder is found by its own path; the option would
    be silently ignored)."""
    try:
        ref = resolve_dataset(dataset)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    check_data_root(ref, data_root)
    return ref


def check_data_root(ref: DatasetRef, data_root: Path | str | None) -> None:
    """Refuse ``--data-root`` for a folder data set, which it cannot affect."""
    if data_root is not None and ref.folder is not None:
        raise click.UsageError(
            f"--data-root applies to the registered data sets ({', '.join(sorted(DATASETS))}); {ref.folder} is a "
            "folder data set, found by its own path"
        )


def check_features_or_fail(splits: Any) -> None:
    """Refuse training or test features holding NaN/inf (a damaged cache or clip), naming how many clips and
    which, before any training blames the learning rate for it."""
    from ddfad_apps.distill.compat import NonFiniteInputError, check_finite

    try:
        check_finite(splits.train.features, "the training features")
        check_finite(splits.test.features, "the test features")
    except NonFiniteInputError as exc:
        raise click.ClickException(str(exc)) from exc


def load_splits_or_fail(dataset: str, data_root: Path | str | None, progress: bool = True, **options: Any):
    """:func:`load_features` whose data errors (missing data set, unreadable clip, empty class) become a
    :class:`click.ClickException` carrying their message, which names the problem and the fix."""
    from ddfad_apps.data import AudioReadError
    from ddfad_apps.features import load_features

    try:
        return load_features(dataset, data_root, progress=progress, **options)
    except (OSError, ValueError, AudioReadError) as exc:
        raise click.ClickException(str(exc)) from exc
