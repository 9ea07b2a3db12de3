"""Where is a data set on disk?  Option, then ``DDFAD_DATA``, then the cache folder.

Every loader asks :func:`find_dataset_dir`, so the rule is written once and the error a user sees when a data
set is missing always says which places were searched and what layout was expected there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DATA = "DDFAD_DATA"
ENV_CACHE = "DDFAD_CACHE"


class DatasetNotFoundError(FileNotFoundError):
    """A data set was not found in any of the searched places."""


def cache_dir() -> Path:
    """Root of everything ddfad-apps caches: ``$DDFAD_CACHE``, else ``$XDG_CACHE_HOME/ddfad-apps``, else ``~/.cache/ddfad-apps``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ddfad-apps"


def default_data_root() -> Path:
    """Folder that ``ddfad-apps data download`` fills when no root is given."""
    return cache_dir() / "data"


@dataclass(frozen=True)
class Layout:
    """How to recognise one data set inside a data root.

    ``folder_names`` are the sub-folder names tried under a root (the first is where downloads go);
    ``marker`` is a path relative to the data set's folder that must exist; ``description`` is shown to users.
    """

    name: str
    folder_names: tuple[str, ...]
    marker: str
    description: str

    def matches(self, folder: Path) -> bool:
        return (folder / self.marker).exists()


def candidate_roots(data_root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places searched, in order, each labelled with where it came from."""
    roots: list[tuple[str, Path]] = []
    if data_root is not None:
        roots.append(("--data-root", Path(data_root).expanduser()))
    if os.environ.get(ENV_DATA):
        roots.append((f"${ENV_DATA}", Path(os.environ[ENV_DATA]).expanduser()))
    roots.append(("cache", default_data_root()))
    return roots


def find_dataset_dir(layout: Layout, data_root: str | os.PathLike | None = None) -> Path:
    """Return the folder holding ``layout``'s data set, or raise a :class:`DatasetNotFoundError` saying what to put where.

    A root may be the data set folder itself or a folder that holds it under one of ``layout.folder_names``.
    An explicit ``data_root`` that does not hold the data set is an error even if the data set is elsewhere:
    a user who names a place means that place.
    """
    searched: list[str] = []
    for origin, root in candidate_roots(data_root):
        for folder in (root, *(root / n for n in layout.folder_names)):
            if layout.matches(folder):
                return folder.resolve()
        searched.append(f"  {origin}: {root}")
        if origin == "--data-root":
            break
    raise DatasetNotFoundError(
        f"Data set '{layout.name}' not found. Searched:\n" + "\n".join(searched) + "\n"
        f"Expected layout: <root>/{layout.folder_names[0]}/{layout.marker} ({layout.description}).\n"
        f"Pass --data-root, set {ENV_DATA}, or run `ddfad-apps data download {layout.name}`."
    )
