"""Data sets by name: ``list_clips('fsdd', 'train')`` and the audio defaults chosen for each.

Also the one rule for what a ``--dataset`` argument refers to (:func:`resolve_dataset`): a registered name wins
(case-insensitive), otherwise it is a folder, known by its absolute path.  Its short name (run names, output
folders) and how a run folder records it (:meth:`DatasetRef.record`, read back by :func:`dataset_from_record`)
are decided here only, so every command names and finds a data set the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.folder import list_folder
from ddfad_apps.data.fsdd import list_fsdd
from ddfad_apps.data.ravdess import list_ravdess
from ddfad_apps.data.urbansound8k import list_urbansound8k


@dataclass(frozen=True)
class DatasetSpec:
    """A data set's lister, its default audio settings (rate, duration chosen to cover most clips) and the
    file-name pattern naming each clip's group (speaker, actor, source recording), the unit a split that must
    generalise to unseen people holds out whole (``ddfad-apps data split``)."""

    name: str
    lister: Callable[..., ClipList]
    sample_rate: int
    duration: float
    num_classes: int
    group_pattern: str


DATASETS: dict[str, DatasetSpec] = {
    "fsdd": DatasetSpec("fsdd", list_fsdd, 8000, 1.0, 10, r"^\d_(?P<group>[a-z]+)_"),  # the speaker
    "ravdess": DatasetSpec("ravdess", list_ravdess, 16000, 3.0, 8, r"-(?P<group>\d+)\.\w+$"),  # the actor
    "urbansound8k": DatasetSpec("urbansound8k", list_urbansound8k, 16000, 4.0, 10, r"^(?P<group>\d+)-"),  # freesound id
}


class DatasetChangedError(ValueError):
    """A recorded folder data set is gone, or its files are no longer those the record was made from."""


@dataclass(frozen=True)
class DatasetRef:
    """What a ``--dataset`` argument refers to: a registered data set (``folder is None``) or a folder."""

    name: str
    folder: Path | None = None

    @property
    def argument(self) -> str:
        """The value :func:`list_clips` / ``load_features`` take: the registered name or the absolute folder."""
        return self.name if self.folder is None else str(self.folder)

    def record(self) -> str | dict[str, str]:
        """How a run folder records the data set: a registered one by name; a folder by absolute path and a
        fingerprint of its files, so a later command finds the same data from any working directory and notices
        when it changed."""
        if self.folder is None:
            return self.name
        return {"name": self.name, "folder": str(self.folder), "fingerprint": folder_fingerprint(self.folder)}

    def __str__(self) -> str:
        return self.argument


def resolve_dataset(dataset: str | Path) -> DatasetRef:
    """The data set ``dataset`` names: a registered name (case-insensitive; it wins over a folder of the same
    name in the working directory) or an existing folder (its absolute path; its short name is the folder's)."""
    text = str(dataset)
    if text.lower() in DATASETS:
        return DatasetRef(text.lower())
    path = Path(text).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return DatasetRef(folder.name or "folder", folder)
    raise ValueError(f"unknown data set {text!r}; choose one of {sorted(DATASETS)} or give a folder path")


def short_name(dataset: str | Path) -> str:
    """The data set's name in run names and output folders (``fsdd``, or a folder's own name)."""
    return resolve_dataset(dataset).name


def folder_fingerprint(folder: str | Path) -> str:
    """SHA-256 over every file under ``folder`` (relative path and size; ``manifest.json`` by content): it changes
    when a clip is added, removed, renamed or resized, or the manifest's audio settings change.  Hidden files
    and folders (``.cache``, ``.DS_Store``) are left out."""
    root = Path(folder)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        h.update(f"{rel.as_posix()}|{p.stat().st_size}\n".encode())
        if rel.as_posix() == "manifest.json":
            h.update(p.read_bytes())
    return h.hexdigest()


def dataset_from_record(record: Any, override: str | Path | None = None, where: str = "run.json") -> DatasetRef:
    """The data set a run folder recorded (see :meth:`DatasetRef.record`), checked to be still the same.

    ``override`` (a name or folder given by the user, e.g. because the folder moved) replaces the record without
    the fingerprint check: whether its data fits the distilled set is then for the caller's content check.
    Raises :class:`DatasetChangedError` when a recorded folder is missing or its files changed, and ``ValueError``
    for a record that names a folder only by name (written by an older version: its location is unknown).
    """
    if override is not None:
        return resolve_dataset(override)
    if isinstance(record, str):
        if record.lower() in DATASETS:
            return DatasetRef(record.lower())
        raise ValueError(
            f"{where} records data set {record!r}, which is not a registered data set ({', '.join(sorted(DATASETS))}) "
            "and names no folder location (written by an older ddfad-apps); pass --dataset DIR with the folder "
            "it was distilled from"
        )
    if not isinstance(record, dict) or not isinstance(record.get("folder"), str):
        raise ValueError(f"{where}: malformed data set record {record!r}; expected a name or "
                         "{'folder': ..., 'fingerprint': ...}")
    folder = Path(record["folder"])
    if not folder.is_dir():
        raise DatasetChangedError(
            f"folder data set {folder} (recorded in {where}) does not exist any more; pass --dataset DIR if it moved"
        )
    now = folder_fingerprint(folder)
    if record.get("fingerprint") != now:
        raise DatasetChangedError(
            f"folder data set {folder} changed since it was recorded in {where} (clips added, removed or resized, "
            f"or manifest.json edited): fingerprint {str(record.get('fingerprint'))[:12]} then, {now[:12]} now; "
            "restore it, or pass --dataset DIR to use the folder as it is now"
        )
    return DatasetRef(folder.name or "folder", folder)


def list_clips(
    name: str, split: str = "train", data_root: str | Path | None = None, sample_rate: int | None = None,
    duration: float | None = None, **options,
) -> ClipList:
    """Clips of ``split`` of data set ``name``; ``name`` may also be a folder path (one sub-folder per class)."""
    ref = resolve_dataset(name)
    if ref.folder is not None:
        return list_folder(ref.folder, split, sample_rate, duration, **options)
    spec = DATASETS[ref.name]
    return spec.lister(
        split=split, data_root=data_root, sample_rate=sample_rate or spec.sample_rate,
        duration=duration or spec.duration, **options,
    )
