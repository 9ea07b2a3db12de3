"""The first steps every data-consuming job shares: which data set, with which options, on which device, and its
train/test features checked before any training can blame a learning rate for bad inputs.

Each step raises :class:`JobError` (the data is missing or damaged) or :class:`JobSettingsError` (settings that
cannot be honoured together), with a message naming the problem and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddfad_apps.jobs.errors import JobError, JobSettingsError

if TYPE_CHECKING:
    import torch

    from ddfad_apps.data.registry import DatasetRef
    from ddfad_apps.features.config import FeatureConfig
    from ddfad_apps.features.dataset import FeatureSplits

Say = Callable[[str], None]  # where a job writes its progress lines (print, tqdm.write, a logger)


def takes_split_mode(ref: DatasetRef) -> bool:
    """Whether the data set has a choice of split (RAVDESS: actor-independent or stratified)."""
    return ref.name == "ravdess" and ref.folder is None


def open_dataset(dataset: str | Path, data_root: str | Path | None = None, split_mode: str | None = None,
                 group_pattern: str | None = None) -> tuple[DatasetRef, dict[str, Any]]:
    """The data set ``dataset`` names and the loader options of ``split_mode`` (RAVDESS) and ``group_pattern``
    (a folder data set: the regex giving each file's group, so no group is on both sides of the split).

    Refuses an unknown name (:class:`JobError`), a ``data_root`` with a folder data set (found by its own path, the
    option would be silently ignored) and a ``split_mode`` for a data set without one (:class:`JobSettingsError`).
    """
    from ddfad_apps.data.registry import resolve_dataset

    try:
        ref = resolve_dataset(dataset)
    except ValueError as exc:
        raise JobError(str(exc)) from exc
    check_data_root(ref, data_root)
    if split_mode is not None and not takes_split_mode(ref):
        raise JobSettingsError("--split-mode applies to --dataset ravdess only")
    options: dict[str, Any] = {"split_mode": split_mode} if split_mode else {}
    if group_pattern is not None:
        if ref.folder is None:
            raise JobSettingsError(f"--group-pattern applies to folder data sets; {ref.name} has its own split")
        try:
            re.compile(group_pattern)
        except re.error as exc:
            raise JobSettingsError(f"--group-pattern {group_pattern!r} is not a regular expression: {exc}") from exc
        options["group_pattern"] = group_pattern
    return ref, options


def check_data_root(ref: DatasetRef, data_root: str | Path | None) -> None:
    """Refuse ``data_root`` for a folder data set, which it cannot affect."""
    from ddfad_apps.data.registry import DATASETS

    if data_root is not None and ref.folder is not None:
        raise JobSettingsError(
            f"--data-root applies to the registered data sets ({', '.join(sorted(DATASETS))}); {ref.folder} is a "
            "folder data set, found by its own path"
        )


def open_device(name: str) -> torch.device:
    """The torch device ``name`` means (``auto`` picks a GPU when there is one); a clear error when absent."""
    from ddfad_apps.training import resolve_device

    try:
        return resolve_device(name)
    except RuntimeError as exc:
        raise JobSettingsError(str(exc)) from exc


def feature_config(kind: str | None = None, frame_ms: float | None = None, hop_ms: float | None = None,
                   n_coeffs: int | None = None) -> FeatureConfig:
    """The feature settings of a job: the defaults with the given changes (``None``: keep the default); an unknown
    kind or impossible settings are a :class:`JobSettingsError`."""
    from ddfad_apps.features import FeatureConfig

    changes = {k: v for k, v in {"kind": kind, "frame_ms": frame_ms, "hop_ms": hop_ms,
                                 "n_coeffs": n_coeffs}.items() if v is not None}
    try:
        return FeatureConfig().replace(**changes)
    except ValueError as exc:
        raise JobSettingsError(str(exc)) from exc


def load_splits(ref: DatasetRef, data_root: str | Path | None = None, progress: bool = True,
                **options: Any) -> FeatureSplits:
    """The data set's normalised train/test features (``options`` go to ``load_features``: split mode, feature
    config, duration, ``on_error``), refused when any feature is NaN/inf.

    A missing data set, an unreadable clip or an empty class is a :class:`JobError` carrying the loader's message,
    which names the expected layout or the file.
    """
    from ddfad_apps import features
    from ddfad_apps.data import AudioReadError

    try:
        splits = features.load_features(ref.argument, data_root, progress=progress, **options)
    except (OSError, ValueError, AudioReadError) as exc:
        raise JobError(str(exc)) from exc
    check_finite_features(splits)
    return splits


def check_finite_features(splits: FeatureSplits) -> None:
    """Refuse training or test features holding NaN/inf (a damaged cache or clip), naming how many clips and
    which, before any training blames the learning rate for it."""
    from ddfad_apps.distill.compat import NonFiniteInputError, check_finite

    try:
        check_finite(splits.train.features, "the training features")
        check_finite(splits.test.features, "the test features")
    except NonFiniteInputError as exc:
        raise JobError(str(exc)) from exc
